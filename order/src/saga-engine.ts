/**
 * Runs a saga definition (saga.ts) durably, in any order process, whoever started it:
 *  - claim and join: one claim per order per process; a second request for the same order in this
 *    process shares the first one's outcome, and one that finds another process driving the attempt
 *    waits for its outcome in the order's record;
 *  - the lease: a driver holds the saga until its lease runs out, and renews it as it goes
 *    (saga-attempt.ts, which drives one claimed attempt: steps, retries, compensations);
 *  - takeover: once the lease has run out, or the driver's liveness key has expired, any process takes
 *    the saga over where it stands: a checkout request for that order, or the sweep below. A driver
 *    keeps a liveness key that expires within a second of its death, so its sagas are taken over
 *    without waiting out their lease, and a driver that restarts takes its own back at once
 *    (saga-record.ts, isOrphaned).
 * The outcome is answered only once it is durable: done, or the decision to compensate (the
 * compensations then finish, whoever drives them).
 */
import { type Backoff, backoffMs } from "@checkout/common/backoff";
import { TIMING, type Timing } from "@checkout/common/timing";
import { AppError } from "@checkout/common/errors";
import { metrics } from "@checkout/common/metrics";
import type { OrderStore } from "./orders";
import {
  type Driving,
  driveAttempt,
  failed,
  type SagaDefinition,
  type SagaOutcome,
  SagaTakenOver,
  untilReachable,
} from "./saga-attempt";
import { isUnfinished } from "./saga-record";

const stillUndoing = (orderId: string) =>
  failed({
    code: "checkout_in_progress",
    message: `order ${orderId}'s previous checkout is still undoing its steps; retry later`,
  });

/** Waiting for another driver's saga. */
const POLL_BACKOFF: Backoff = { firstMs: 5, capMs: 100 };

/** The liveness key is refreshed this many times within its time to live: a missed beat or two is no death. */
const HEARTBEATS_PER_TTL = 4;

export function createSagaEngine(orders: OrderStore, definition: SagaDefinition, timing: Timing = TIMING) {
  /** Sagas this process drives: their outcome once decided, and when the driving ends. */
  const driving = new Map<string, { outcome: Promise<SagaOutcome>; ended: Promise<void>; failed: boolean }>();
  let sweepTimer: ReturnType<typeof setInterval> | undefined;
  let heartbeatTimer: ReturnType<typeof setInterval> | undefined;
  /** The last failure of a step of each saga this process drives (for the sagas-in-flight listing). */
  const lastStepErrors = new Map<string, string>();
  const attempts: Driving = { orders, timing, stepFailed: (orderId, failure) => lastStepErrors.set(orderId, failure) };

  /**
   * One claim per order per process: a second checkout of the same order in this process shares the
   * first one's outcome instead of claiming the saga again (it would look like its own to take over).
   * But a checkout that comes once the failure is decided (the 409 may have been answered already) is a
   * new request for the order: it starts the next attempt when the compensations have ended.
   */
  function run(orderId: string, resume?: string): Promise<SagaOutcome> {
    const local = driving.get(orderId);
    if (local) return local.failed ? afterUndone(orderId, local.ended) : local.outcome;
    const outcome = Promise.withResolvers<SagaOutcome>();
    const ended = Promise.withResolvers<void>();
    const drive = { outcome: outcome.promise, ended: ended.promise, failed: false };
    driving.set(orderId, drive);
    let decided = false;
    const decide = (result: SagaOutcome) => {
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
  async function afterUndone(orderId: string, ended: Promise<void>): Promise<SagaOutcome> {
    const inTime = await Promise.race([
      ended.then(() => true),
      Bun.sleep(timing.checkoutAnswerDeadlineMs).then(() => false),
    ]);
    return inTime ? run(orderId) : stillUndoing(orderId);
  }

  async function claimAndDrive(
    orderId: string,
    decide: (o: SagaOutcome) => void,
    claimed: (opId: string, afterDecision?: boolean) => void,
    resume?: string,
  ): Promise<void> {
    const start = await untilReachable(timing, () => orders.startCheckout(orderId, resume));
    if (start.kind === "paid") return decide({ paid: true });
    if (start.kind === "ended")
      return decide(failed({ code: "checkout_in_progress", message: "the attempt resumed had ended" }));
    if (start.kind === "wait") return claimed(start.opId, start.decided);
    claimed(start.order.saga.opId);
    if (start.takeover) metrics.sagaTakeovers.inc();
    await driveAttempt(attempts, orderId, start.order, definition(start.order), decide);
  }

  /**
   * Waits for the outcome of the attempt `opId`, driven elsewhere; takes the saga over if its driver is
   * gone. `afterDecision`: the request came once the attempt's failure was decided, so it waits for
   * the attempt to end and then checks out anew.
   */
  async function awaitOutcome(orderId: string, opId: string, afterDecision: boolean): Promise<SagaOutcome> {
    const deadline = Date.now() + timing.checkoutAnswerDeadlineMs;
    for (let poll = 0; ; poll++) {
      const local = driving.get(orderId);
      if (local) return afterDecision ? run(orderId) : local.outcome;
      const order = await orders
        .findLogged(orderId)
        .catch((err) => (err instanceof AppError && err.status === 404 ? Promise.reject(err) : null));
      if (order) {
        const saga = order.saga;
        if (order.paid) return { paid: true };
        if (afterDecision) {
          if (saga.opId !== opId || !isUnfinished(saga)) return run(orderId);
        } else if (saga.opId !== opId || !isUnfinished(saga) || saga.status === "compensating") {
          // Not paid and no longer running: this attempt failed (a newer one may have started since).
          return failed(
            saga.opId === opId && saga.error
              ? saga.error
              : { code: "checkout_in_progress", message: "this checkout attempt failed; a newer one has started" },
          );
        }
        if (await orders.isOrphaned(saga)) return run(orderId);
      }
      if (Date.now() > deadline) {
        if (afterDecision) return stillUndoing(orderId);
        throw new AppError(
          503,
          "peer_unavailable",
          `the outcome of checkout ${orderId} is not known yet; retry the checkout to learn it`,
        );
      }
      await Bun.sleep(backoffMs(poll, POLL_BACKOFF));
    }
  }

  /**
   * Finds unfinished sagas nobody drives (their driver's lease has expired or it is gone, or they are
   * this process's own from before a restart) and drives them to their end.
   */
  async function sweep(): Promise<void> {
    for (const [id, saga] of await orders.orphanedSagas((id) => driving.has(id))) {
      // That attempt only: it may end before the claim, and must not be followed by a new one.
      if (!driving.has(id)) run(id, saga.opId).catch(() => {});
    }
  }

  return {
    /**
     * Runs the order's saga, or joins the attempt under way; resolves with its outcome once durable.
     * `resume`: only take over that attempt, as the sweep does (see orders.startCheckout).
     */
    checkout: run,
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
      const sweepQuietly = () => sweep().catch(() => {});
      sweepQuietly();
      sweepTimer = setInterval(sweepQuietly, timing.sagaSweepIntervalMs);
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

export type SagaEngine = ReturnType<typeof createSagaEngine>;
