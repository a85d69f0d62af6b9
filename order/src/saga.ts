/**
 * Checkout, as the API describes it, driven by the order service:
 *   1. take the stock of every item of the order (stock sums the quantities of one item);
 *   2. charge the order's total to its user;
 *   3. mark the order paid, and answer 200.
 * If a step is refused, every step already done is undone in reverse order (restore stock, refund),
 * and the answer is 409.
 *
 * What makes it crash-proof:
 * - The saga's start is recorded in the order (Redis + log) BEFORE its first step, and its decision
 *   (paid, or compensating from a given step) before it is answered; whoever drives it next knows
 *   where it stood. Forward steps in between are not recorded one by one: a driver that takes a
 *   running saga over sends them again from the first, and each answers with its first outcome.
 * - Each step and each compensation carries the attempt's operation id (SagaRecord.opId): the participant
 *   applies it once, answers a repeat with the first outcome, and a compensation fences its step.
 *   So a step whose outcome is unknown (timeout, crash) is simply sent again.
 * - A driver holds a lease on the saga; when it dies, any order process takes the saga over once
 *   the lease has expired (the sweep below, or a checkout request for that order) and finishes it.
 *   A driver also keeps a liveness key that expires within a second of its death: its sagas are
 *   taken over then, without waiting out their lease, and a driver that restarts takes its own back
 *   at once (orders.ts, isOrphaned).
 * - 200 is answered only once the order is durably paid; 409 only once the decision to compensate
 *   is durable (compensations then finish, whoever drives them).
 */
import { TIMING, type Timing } from "@checkout/common/config";
import { AppError } from "@checkout/common/errors";
import { crashPoint } from "@checkout/common/faults";
import { attemptStart } from "@checkout/common/retention";
import { metrics } from "@checkout/common/metrics";
import { isUnfinished, sagaChanges, type Order, type OrderStore, type SagaChange } from "./orders";
import type { PeerAnswer, Peers } from "./peers";

type SagaStep = {
  name: string;
  forward: () => Promise<PeerAnswer>;
  compensate: () => Promise<PeerAnswer>;
};

export function checkoutSteps(order: Order, peers: Peers): SagaStep[] {
  const opId = order.saga.opId;
  const items = { items: order.items };
  const charge = { user_id: order.userId, amount: order.totalCost };
  const nothingToDo = async (): Promise<PeerAnswer> => ({ kind: "ok", body: {} });
  return [
    {
      name: "take_stock",
      forward: order.items.length ? () => peers.stock.step("take", opId, items) : nothingToDo,
      compensate: order.items.length ? () => peers.stock.step("restore", opId, items) : nothingToDo,
    },
    {
      name: "charge_credit",
      forward: () => peers.payment.step("charge", opId, charge),
      compensate: () => peers.payment.step("refund", opId, charge),
    },
  ];
}

export type CheckoutOutcome = { paid: true } | { paid: false; error: AppError };

/** Every refused checkout answers 409, naming the refusal that caused it. */
const failedCheckout = (error: { code: AppError["code"]; message: string }): CheckoutOutcome => ({
  paid: false,
  error: new AppError(409, error.code, error.message),
});

/** Thrown where a driver finds that another process has taken its saga over (its lease had expired). */
class SagaTakenOver extends Error {}

const stillUndoing = (orderId: string) =>
  failedCheckout({
    code: "checkout_in_progress",
    message: `order ${orderId}'s previous checkout is still undoing its steps; retry later`,
  });

/** Waiting for another driver's saga: first poll after FIRST ms, then doubling up to CAP. */
const POLL_FIRST_MS = 5;
const POLL_CAP_MS = 100;
/** Retrying a step whose outcome is unknown: doubling from FIRST up to CAP. */
const RETRY_FIRST_MS = 20;
const RETRY_CAP_MS = TIMING.stepRetryCapMs;

/** The liveness key is refreshed this many times within its time to live: a missed beat or two is no death. */
const HEARTBEATS_PER_TTL = 4;

const backoff = (attempt: number, first: number, cap: number) => Math.min(cap, first * 2 ** attempt);

export function createCheckout(orders: OrderStore, peers: Peers, timing: Timing = TIMING) {
  /** Sagas this process drives: their outcome once decided, and when the driving ends. */
  const driving = new Map<string, { outcome: Promise<CheckoutOutcome>; ended: Promise<void>; failed: boolean }>();
  let sweepTimer: ReturnType<typeof setInterval> | undefined;
  let heartbeatTimer: ReturnType<typeof setInterval> | undefined;
  /** The last failure of a step of each saga this process drives (for the sagas-in-flight listing). */
  const lastStepErrors = new Map<string, string>();

  /**
   * One claim per order per process: a second checkout of the same order in this process shares the
   * first one's outcome instead of claiming the saga again (it would look like its own to take over).
   * But a checkout that comes once the failure is decided (the 409 may have been answered already) is a
   * new request for the order: it starts the next attempt when the compensations have ended.
   */
  function checkout(orderId: string, resume?: string): Promise<CheckoutOutcome> {
    const local = driving.get(orderId);
    if (local) return local.failed ? afterUndone(orderId, local.ended) : local.outcome;
    const outcome = Promise.withResolvers<CheckoutOutcome>();
    const ended = Promise.withResolvers<void>();
    const drive = { outcome: outcome.promise, ended: ended.promise, failed: false };
    driving.set(orderId, drive);
    let decided = false;
    const decide = (result: CheckoutOutcome) => {
      decided = true;
      drive.failed = !result.paid;
      outcome.resolve(result);
    };
    let awaited = { opId: "", afterDecision: false };
    claimAndDrive(orderId, decide, (opId, afterDecision = false) => (awaited = { opId, afterDecision }), resume)
      .catch((err) => {
        // Another process drives the saga now and decides it: this request learns the outcome below.
        if (err instanceof SagaTakenOver) return;
        if (!decided) {
          decided = true;
          outcome.reject(err);
        } else console.error(`[saga] ${orderId}: driver stopped, the sweep will resume it: ${err}`);
      })
      .finally(() => {
        driving.delete(orderId);
        lastStepErrors.delete(orderId);
        ended.resolve();
        // Taken over by another process, or stopped before deciding: whoever waits learns the
        // outcome from the durable record.
        if (!decided) outcome.resolve(awaitOutcome(orderId, awaited.opId, awaited.afterDecision));
      });
    return outcome.promise;
  }

  /**
   * A checkout that came once the previous attempt's failure was decided starts the next attempt when
   * that one's compensations have ended. Should they outlast the answer deadline (a participant
   * unreachable, or refusing a compensation that does not fit yet), it answers 409 checkout_in_progress:
   * nothing was done for it, and the order is still being checked out.
   */
  async function afterUndone(orderId: string, ended: Promise<void>): Promise<CheckoutOutcome> {
    const inTime = await Promise.race([
      ended.then(() => true),
      Bun.sleep(timing.checkoutAnswerDeadlineMs).then(() => false),
    ]);
    return inTime ? checkout(orderId) : stillUndoing(orderId);
  }

  async function claimAndDrive(
    orderId: string,
    decide: (o: CheckoutOutcome) => void,
    claimed: (opId: string, afterDecision?: boolean) => void,
    resume?: string,
  ): Promise<void> {
    const start = await untilReachable(() => orders.startCheckout(orderId, resume));
    if (start.kind === "paid") return decide({ paid: true });
    if (start.kind === "ended")
      return decide(failedCheckout({ code: "checkout_in_progress", message: "the attempt resumed had ended" }));
    if (start.kind === "wait") return claimed(start.opId, start.decided);
    claimed(start.order.saga.opId);
    if (start.takeover) metrics.sagaTakeovers.inc();
    await runSaga(orderId, start.order, decide);
  }

  async function runSaga(orderId: string, claimed: Order, decide: (outcome: CheckoutOutcome) => void): Promise<void> {
    const opId = claimed.saga.opId;
    const steps = checkoutSteps(claimed, peers);
    let order: Order = claimed;

    /** Records a transition; false when another process has taken the saga over (it finishes it). */
    const record = async (op: string, change: SagaChange): Promise<boolean> => {
      const next = await untilReachable(() => orders.recordSaga(op, orderId, opId, change));
      if (next) order = next;
      return next !== null;
    };
    const keepLease = async () => {
      if (order.saga.leaseUntil - Date.now() < timing.sagaLeaseMs / 2) {
        if (!(await record("order.saga_lease", sagaChanges.renewLease(Date.now(), timing.sagaLeaseMs))))
          throw new SagaTakenOver();
      }
    };

    if (order.saga.status === "running") {
      // From the attempt's start, whoever drives it: a driver that takes the saga over sends no forward
      // step later than the first would have, which bounds how long a step record must be kept
      // (config.ts, minStepRecordRetentionMs).
      const deadline = (attemptStart(opId) ?? Date.now()) + timing.forwardStepDeadlineMs;
      for (let k = 0; k < steps.length; k++) {
        const step = steps[k]!;
        // Nothing is recorded between steps (see above); the lease is kept as between retries.
        if (k > 0) await keepLease();
        const answer = await sendUntil(
          orderId,
          step.name,
          step.forward,
          (a) => a.kind !== "unknown",
          keepLease,
          deadline,
        );
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
        if (await record("order.saga_paid", sagaChanges.paid())) decide({ paid: true });
        return;
      }
    }

    // Compensating: the failure is decided and durable, so the answer can go out now.
    decide(failedCheckout(order.saga.error ?? { code: "internal_error", message: "checkout failed" }));
    // A compensation is sent until it is applied, with no deadline: the failure is answered already,
    // and the step's effect must not stay. A participant refuses one that would take a balance past
    // 2^53-1 until the balance allows it (docs/design.md, "Idempotent, fenced steps").
    for (let k = order.saga.step; k >= 0; k--) {
      await sendUntil(orderId, `undo_${steps[k]!.name}`, steps[k]!.compensate, (a) => a.kind === "ok", keepLease);
      metrics.sagaCompensations.inc({ step: steps[k]!.name });
      crashPoint(`after_undo_${steps[k]!.name}`);
    }
    await record("order.saga_failed", sagaChanges.failed());
  }

  /**
   * Sends a step, or a compensation, until `final` holds for its answer; the lease is kept between
   * tries. Nothing is sent after `sendBy`: the answer is then unknown.
   */
  async function sendUntil(
    orderId: string,
    step: string,
    call: () => Promise<PeerAnswer>,
    final: (answer: PeerAnswer) => boolean,
    keepLease: () => Promise<void>,
    sendBy = Infinity,
  ): Promise<PeerAnswer> {
    for (let attempt = 0; ; attempt++) {
      if (Date.now() > sendBy) return { kind: "unknown", reason: "the forward steps' deadline has passed" };
      (attempt === 0 ? metrics.sagaStepsSent : metrics.sagaStepRetries).inc({ step });
      const answer = await call();
      if (answer.kind !== "ok")
        lastStepErrors.set(
          orderId,
          `${step}: ${answer.kind === "refused" ? `${answer.error.code}: ${answer.error.message}` : answer.reason}`,
        );
      if (final(answer)) return answer;
      if (answer.kind === "refused")
        console.error(
          `[saga] ${orderId} ${step}: refused (${answer.error.code}: ${answer.error.message}); sending it again`,
        );
      await Bun.sleep(backoff(attempt, RETRY_FIRST_MS, RETRY_CAP_MS));
      await keepLease();
    }
  }

  /**
   * The order service's own Redis unreachable (restarting, replaying its log): keep trying within the
   * answer deadline rather than answer a 5xx for a checkout that will be decided in a moment.
   */
  async function untilReachable<T>(write: () => Promise<T>): Promise<T> {
    const deadline = Date.now() + timing.checkoutAnswerDeadlineMs;
    for (let attempt = 0; ; attempt++) {
      try {
        return await write();
      } catch (err) {
        const decided = err instanceof AppError && err.status < 500;
        if (decided || Date.now() > deadline) throw err;
        await Bun.sleep(backoff(attempt, RETRY_FIRST_MS, RETRY_CAP_MS));
      }
    }
  }

  /**
   * Waits for the outcome of the attempt `opId`, driven elsewhere; takes the saga over if its driver is
   * gone. `afterDecision`: the request came once the attempt's failure was decided, so it waits for
   * the attempt to end and then checks out anew.
   */
  async function awaitOutcome(orderId: string, opId: string, afterDecision: boolean): Promise<CheckoutOutcome> {
    const deadline = Date.now() + timing.checkoutAnswerDeadlineMs;
    for (let poll = 0; ; poll++) {
      const local = driving.get(orderId);
      if (local) return afterDecision ? checkout(orderId) : local.outcome;
      const order = await orders
        .findLogged(orderId)
        .catch((err) => (err instanceof AppError && err.status === 404 ? Promise.reject(err) : null));
      if (order) {
        const saga = order.saga;
        if (order.paid) return { paid: true };
        if (afterDecision) {
          if (saga.opId !== opId || !isUnfinished(saga)) return checkout(orderId);
        } else if (saga.opId !== opId || !isUnfinished(saga) || saga.status === "compensating") {
          // Not paid and no longer running: this attempt failed (a newer one may have started since).
          return failedCheckout(
            saga.opId === opId && saga.error
              ? saga.error
              : { code: "checkout_in_progress", message: "this checkout attempt failed; a newer one has started" },
          );
        }
        if (await orders.isOrphaned(saga)) return checkout(orderId);
      }
      if (Date.now() > deadline) {
        if (afterDecision) return stillUndoing(orderId);
        throw new AppError(
          503,
          "peer_unavailable",
          `the outcome of checkout ${orderId} is not known yet; retry the checkout to learn it`,
        );
      }
      await Bun.sleep(backoff(poll, POLL_FIRST_MS, POLL_CAP_MS));
    }
  }

  /**
   * Finds unfinished sagas nobody drives (their driver's lease has expired or it is gone, or they are
   * this process's own from before a restart) and drives them to their end.
   */
  async function sweep(): Promise<void> {
    const ids = await orders.unfinishedSagas();
    for (const id of ids) {
      if (driving.has(id)) continue;
      const order = await orders.find(id).catch(() => null);
      if (order && (await orders.isOrphaned(order.saga))) {
        // That attempt only: it may end before the claim, and must not be followed by a new one.
        checkout(id, order.saga.opId).catch(() => {});
      }
    }
  }

  return {
    checkout,
    sweep,
    /**
     * Announces this process's presence, keeps its liveness key fresh and sweeps for sagas nobody drives, until stop().
     * Resolves once the key has been set (or Redis did not answer).
     */
    async start() {
      await orders.announcePresence();
      const beat = () => orders.stillAlive(timing.driverAliveTtlMs).catch(() => {});
      await beat();
      heartbeatTimer = setInterval(beat, timing.driverAliveTtlMs / HEARTBEATS_PER_TTL);
      const run = () => sweep().catch(() => {});
      run();
      sweepTimer = setInterval(run, timing.sagaSweepIntervalMs);
    },
    /** Takes on no more sagas; those in flight are still this process's own until stop(). */
    stopSweeping() {
      if (sweepTimer) clearInterval(sweepTimer);
    },
    stop() {
      if (sweepTimer) clearInterval(sweepTimer);
      if (heartbeatTimer) clearInterval(heartbeatTimer);
      orders.withdrawPresence();
    },
    /** Sagas in flight in this process (for a clean stop). */
    inFlight: () => driving.size,
    /** The last failure of a step of a saga this process drives, if any. */
    lastStepError: (orderId: string) => lastStepErrors.get(orderId),
  };
}

export type Checkout = ReturnType<typeof createCheckout>;
