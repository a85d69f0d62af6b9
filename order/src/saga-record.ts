/**
 * The durable record of an order's checkout saga, and its pure rules: which statuses are unfinished,
 * who may take a saga over, and the transitions a driver records (saga-engine.ts drives them, the
 * order's store applies them in a transaction, orders.ts).
 */
import type { AppError, ErrorCode, ErrorStatus } from "@checkout/common/errors";

export type SagaStatus = "none" | "running" | "compensating" | "failed" | "done";

/**
 * The checkout saga of an order, as recorded before its first step and at its decision. `step`: while
 * compensating, the index of the last step whose effect may need undoing (-1: none); 0 while running
 * (a driver runs the forward steps from the first, see saga-engine.ts).
 */
export type SagaRecord = {
  status: SagaStatus;
  attempt: number;
  /**
   * The operation id of this attempt, `<order>:<attempt>.<nonce>@<start>`, sent with every step. The
   * nonce keeps it unique even when batch_init resets an order and its attempts count from 1 again; the
   * start (ms since the epoch, read back with attemptStart) tells participants how old the attempt is
   * (common/src/retention.ts), and the sagas-in-flight listing its age.
   */
  opId: string;
  step: number;
  /** Why the attempt failed, as answered to every checkout request that waited for it. */
  error: { status: ErrorStatus; code: ErrorCode; message: string } | null;
  /** The process driving the saga, until `leaseUntil` (ms since the epoch) unless it renews. */
  owner: string;
  leaseUntil: number;
};

export const NO_SAGA: SagaRecord = {
  status: "none",
  attempt: 0,
  opId: "",
  step: -1,
  error: null,
  owner: "",
  leaseUntil: 0,
};

/**
 * Statuses that mean "not finished": the saga must be driven on by someone. The unfinished-sagas
 * index that recovery rebuilds holds the orders in exactly these (common/src/keyspace.ts,
 * DERIVED_INDEXES; a test holds the two together).
 */
export const UNFINISHED_SAGA_STATUSES: ReadonlySet<SagaStatus> = new Set(["running", "compensating"]);

export const isUnfinished = (saga: SagaRecord) => UNFINISHED_SAGA_STATUSES.has(saga.status);

/**
 * A saga nobody drives any more, which any order process may take over: its driver's lease has run
 * out, its driver is gone (`driverGone`: its liveness key has expired, see TIMING.driverAliveTtlMs), or
 * its driver was `me` before a restart. A replica keeps its INSTANCE_ID when it restarts, and a process
 * drives only the sagas it holds in memory, so an unfinished saga recorded as its own that it does not
 * hold was left by its previous run.
 */
export function isOrphaned(saga: SagaRecord, me: string, now: number, driverGone: boolean): boolean {
  return isUnfinished(saga) && (saga.leaseUntil <= now || saga.owner === me || driverGone);
}

/**
 * Whether telling if `saga` is orphaned needs its driver's liveness: only for an unfinished saga
 * under another process's live lease.
 */
export const needsLiveness = (saga: SagaRecord, me: string, now: number): boolean =>
  isUnfinished(saga) && saga.leaseUntil > now && saga.owner !== "" && saga.owner !== me;

/** What a saga is recorded in (an order): its record, and whether the saga's end has been reached. */
export type SagaHolder = { paid: boolean; saga: SagaRecord };

/** A saga transition: the holder's next saga (and `paid`), or null where the saga's state does not allow it. */
export type SagaChange = (saga: SagaRecord, holder: SagaHolder) => (Partial<SagaHolder> & { saga: SagaRecord }) | null;

const whileRunning = (saga: SagaRecord) => saga.status === "running";

export const sagaChanges = {
  renewLease:
    (now: number, leaseMs: number): SagaChange =>
    (saga) => ({ saga: { ...saga, leaseUntil: now + leaseMs } }),
  /** Only a running saga becomes paid: once compensation is decided, a late "charged" changes nothing. */
  paid: (): SagaChange => (saga) =>
    whileRunning(saga) ? { paid: true, saga: { ...saga, status: "done", owner: "", leaseUntil: 0 } } : null,
  compensate:
    (fromStep: number, error: AppError, now: number, leaseMs: number): SagaChange =>
    (saga) =>
      whileRunning(saga)
        ? {
            saga: {
              ...saga,
              status: "compensating",
              step: fromStep,
              error: { status: error.status, code: error.code, message: error.message },
              leaseUntil: now + leaseMs,
            },
          }
        : null,
  failed: (): SagaChange => (saga) =>
    saga.status === "compensating" ? { saga: { ...saga, status: "failed", owner: "", leaseUntil: 0 } } : null,
};
