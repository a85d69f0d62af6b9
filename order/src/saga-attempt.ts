/**
 * Driving one claimed attempt of a saga to its end: its forward steps in order, then either the
 * transition that completes it, or the decision to compensate and the compensations in reverse order.
 * Who drives which attempt, and when another takes it over, is saga-engine.ts.
 *
 * What makes it crash-proof:
 * - The attempt's start was recorded in the order (Redis + log) BEFORE its first step, and its
 *   decision (done, or compensating from a given step) is recorded before it is answered; whoever
 *   drives it next knows where it stood. Forward steps in between are not recorded one by one: a
 *   driver that takes a running saga over sends them again from the first, and each answers with
 *   its first outcome.
 * - Each step and each compensation carries the attempt's operation id (SagaRecord.opId): the
 *   participant applies it once, answers a repeat with the first outcome, and a compensation fences
 *   its step. So a step whose outcome is unknown (timeout, crash) is simply sent again.
 * - The lease is renewed between steps and retries; a driver that finds it lost stops (SagaTakenOver).
 * Crash points (FAULT_POINT, used by the kill tests): after_<step>, after_undo_<step>.
 */
import { type Backoff, backoffMs } from "@checkout/common/backoff";
import { TIMING, type Timing } from "@checkout/common/timing";
import { AppError } from "@checkout/common/errors";
import { crashPoint } from "@checkout/common/faults";
import { metrics } from "@checkout/common/metrics";
import { attemptStart } from "@checkout/common/retention";
import type { Order } from "./order-rules";
import type { OrderStore } from "./orders";
import type { PeerAnswer } from "./peers";
import { type SagaChange, sagaChanges } from "./saga-record";

/** One step of a saga: its forward action and the compensation that undoes (or fences) it. */
export type SagaStep = {
  name: string;
  forward: () => Promise<PeerAnswer>;
  compensate: () => Promise<PeerAnswer>;
};

/** A saga as its definition gives it for one claimed attempt: its steps, and the transition recorded once all are done. */
export type Saga = { steps: SagaStep[]; done: { op: string; change: SagaChange } };

/** The definition of a saga: what to run for the attempt the order's record holds. */
export type SagaDefinition = (order: Order) => Saga;

export type SagaOutcome = { paid: true } | { paid: false; error: AppError };

/** Every refused saga answers 409, naming the refusal that caused it. */
export const failed = (error: { code: AppError["code"]; message: string }): SagaOutcome => ({
  paid: false,
  error: new AppError(409, error.code, error.message),
});

/** Thrown where a driver finds that another process has taken its saga over (its lease had expired). */
export class SagaTakenOver extends Error {}

/** Retrying a step whose outcome is unknown, or a write to the order's own Redis. */
const RETRY_BACKOFF: Backoff = { firstMs: 20, capMs: TIMING.stepRetryCapMs };

/** What driving an attempt needs: the orders' store, the timing, and where to note a step's failure. */
export type Driving = {
  orders: OrderStore;
  timing: Timing;
  stepFailed: (orderId: string, failure: string) => void;
};

/**
 * Drives the claimed attempt to its end; `decide` learns the outcome as soon as it is durable (the
 * compensations go on after it). Returns early, undecided, when another process has taken it over.
 */
export async function driveAttempt(
  { orders, timing, stepFailed }: Driving,
  orderId: string,
  claimed: Order,
  { steps, done }: Saga,
  decide: (outcome: SagaOutcome) => void,
): Promise<void> {
  const opId = claimed.saga.opId;
  let order: Order = claimed;

  /** Records a transition; false when another process has taken the saga over (it finishes it). */
  const record = async (op: string, change: SagaChange): Promise<boolean> => {
    const next = await untilReachable(timing, () => orders.recordSaga(op, orderId, opId, change));
    if (next) order = next;
    return next !== null;
  };
  const keepLease = async () => {
    if (order.saga.leaseUntil - Date.now() < timing.sagaLeaseMs / 2) {
      if (!(await record("order.saga_lease", sagaChanges.renewLease(Date.now(), timing.sagaLeaseMs))))
        throw new SagaTakenOver();
    }
  };
  /**
   * Sends a step, or a compensation, until `final` holds for its answer; the lease is kept between
   * tries. Nothing is sent after `sendBy`: the answer is then unknown.
   */
  const sendUntil = async (
    step: string,
    call: () => Promise<PeerAnswer>,
    final: (answer: PeerAnswer) => boolean,
    sendBy = Infinity,
  ): Promise<PeerAnswer> => {
    for (let attempt = 0; ; attempt++) {
      if (Date.now() > sendBy) return { kind: "unknown", reason: "the forward steps' deadline has passed" };
      (attempt === 0 ? metrics.sagaStepsSent : metrics.sagaStepRetries).inc({ step });
      const answer = await call();
      if (answer.kind !== "ok")
        stepFailed(
          orderId,
          `${step}: ${answer.kind === "refused" ? `${answer.error.code}: ${answer.error.message}` : answer.reason}`,
        );
      if (final(answer)) return answer;
      if (answer.kind === "refused")
        console.error(
          `[saga] ${orderId} ${step}: refused (${answer.error.code}: ${answer.error.message}); sending it again`,
        );
      await Bun.sleep(backoffMs(attempt, RETRY_BACKOFF));
      await keepLease();
    }
  };

  if (order.saga.status === "running") {
    // From the attempt's start, whoever drives it: a driver that takes the saga over sends no forward
    // step later than the first would have, which bounds how long a step record must be kept
    // (timing.ts, minStepRecordRetentionMs).
    const deadline = (attemptStart(opId) ?? Date.now()) + timing.forwardStepDeadlineMs;
    for (let k = 0; k < steps.length; k++) {
      const step = steps[k]!;
      // Nothing is recorded between steps (see above); the lease is kept as between retries.
      if (k > 0) await keepLease();
      const answer = await sendUntil(step.name, step.forward, (a) => a.kind !== "unknown", deadline);
      if (answer.kind === "ok") {
        crashPoint(`after_${step.name}`);
        continue;
      }
      // A refused step changed nothing, and its refusal is every driver's answer for it: no driver of
      // this attempt went past it. One whose outcome stayed unknown may have been applied, and so may
      // the steps after it: a driver this one took over from may have sent them, and they may still
      // be in flight. So every step is undone; undoing one that never ran fences it instead.
      if (answer.kind === "unknown") metrics.sagaStepTimeouts.inc({ step: step.name });
      const error =
        answer.kind === "refused"
          ? answer.error
          : new AppError(409, "peer_unavailable", `${step.name}: ${answer.reason}`);
      const undoFrom = answer.kind === "refused" ? k - 1 : steps.length - 1;
      if (
        !(await record(
          "order.saga_compensate",
          sagaChanges.compensate(undoFrom, error, Date.now(), timing.sagaLeaseMs),
        ))
      )
        return;
      break;
    }
    if (order.saga.status === "running") {
      if (await record(done.op, done.change)) decide({ paid: true });
      return;
    }
  }

  // Compensating: the failure is decided and durable, so the answer can go out now.
  decide(failed(order.saga.error ?? { code: "internal_error", message: "checkout failed" }));
  // A compensation is sent until it is applied, with no deadline: the failure is answered already,
  // and the step's effect must not stay. A participant refuses one that would take a balance past
  // 2^53-1 until the balance allows it (README, "Idempotent, fenced steps").
  for (let k = order.saga.step; k >= 0; k--) {
    await sendUntil(`undo_${steps[k]!.name}`, steps[k]!.compensate, (a) => a.kind === "ok");
    metrics.sagaCompensations.inc({ step: steps[k]!.name });
    crashPoint(`after_undo_${steps[k]!.name}`);
  }
  await record("order.saga_failed", sagaChanges.failed());
}

/**
 * The order service's own Redis unreachable (restarting, replaying its log): keep trying within the
 * answer deadline rather than answer a 5xx for a checkout that will be decided in a moment.
 */
export async function untilReachable<T>(timing: Timing, write: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + timing.checkoutAnswerDeadlineMs;
  for (let attempt = 0; ; attempt++) {
    try {
      return await write();
    } catch (err) {
      const decided = err instanceof AppError && err.status < 500;
      if (decided || Date.now() > deadline) throw err;
      await Bun.sleep(backoffMs(attempt, RETRY_BACKOFF));
    }
  }
}
