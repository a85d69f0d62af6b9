/**
 * TIMING: the timeouts and bounds several modules rely on, which bound each other
 * (minStepRecordRetentionMs). A constant that matters to one module alone lives beside its use,
 * named: the saga's polling and retry backoff (order/src/saga-engine.ts, saga-attempt.ts), the
 * conflict backoff and batch size (group-commit.ts), reconnecting (redis.ts), shutdown and listening without Redis (service.ts), the
 * order service's drain (order/src/main.ts), nginx's (gateway/render.ts).
 */

/** Timeouts and retry bounds, named so that a reader can find and reason about each one. */
export const TIMING = {
  /** A single service-to-service HTTP call; a slower answer is treated as "outcome unknown". */
  peerCallTimeoutMs: 2_000,
  /**
   * Connecting to a peer's replica. Its kernel accepts a connection within a millisecond however busy
   * the replica is; no connection by then means its address leads nowhere (a container that stopped).
   * Every step waiting on a call to a dead replica waits this long twice (replica.ts), so it stays short.
   */
  peerConnectTimeoutMs: 100,
  /** How often a peer's replica that could not be reached is tried again (a connection, not a call). */
  peerProbeIntervalMs: 250,
  /**
   * A replica marked down takes calls again once connections to it have succeeded for this long: a
   * process that has just started is still connecting and compiling, and one that crash-loops is
   * not sent calls at each of its short lives.
   */
  peerRejoinAfterMs: 3_000,
  /**
   * How long after its attempt began a saga may send a forward step: past it, the saga compensates.
   * Counted from the attempt's start, whichever driver sends, so a driver taken over does not extend it.
   */
  forwardStepDeadlineMs: 10_000,
  /** Retrying a saga step whose outcome is unknown: the longest wait between two sends. */
  stepRetryCapMs: 1_000,
  /**
   * How long a checkout request waits for its saga's outcome before answering 503, or for the previous
   * attempt's compensations before answering 409 checkout_in_progress.
   */
  checkoutAnswerDeadlineMs: 45_000,
  /** A saga driver owns its saga for this long after each renewal; a dead driver's saga is taken over after it. */
  sagaLeaseMs: 3_000,
  /**
   * Each order process keeps a key in its Redis that expires this long after it was last refreshed
   * (every quarter of it). A saga whose driver's key has expired is taken over without waiting out its
   * lease, so a dead driver's checkouts resume within about this long. An event loop stalled longer
   * than this looks dead too: another process then drives its sagas as well, which the steps' operation
   * ids make safe, at the cost of repeated calls.
   */
  driverAliveTtlMs: 1_000,
  /** How often each order process looks for sagas whose driver is gone. */
  sagaSweepIntervalMs: 1_000,
  /** How long an optimistic transaction keeps retrying after WATCH conflicts before giving up (503). */
  transactionBudgetMs: 10_000,
  /**
   * How long a change waits for the service's log writer to make its line durable before it is
   * answered 503, its outcome unknown (a writer that died is restarted within a second or so).
   */
  durableWaitMs: 10_000,
  /** While changes wait for the log, each process reads the durable position this often besides its subscription. */
  durablePositionCheckMs: 1_000,
  /** A compaction holds its service-wide lock at most this long (a crashed compactor's lock expires). */
  compactionLockMs: 300_000,
  /**
   * A service closes a connection idle for this long, and Bun counts a request still being handled
   * without output as idle: the longest request, a batch_init of the most entities, must end within
   * it. Bun's maximum.
   */
  serviceIdleTimeoutS: 255,
  /**
   * The clocks of any two machines of a deployment (services and their Redis) differ by less than this
   * (NTP keeps them within milliseconds). Step records rely on it: retention.ts.
   */
  maxClockSkewMs: 1_000,
} as const;

/**
 * The shortest retention of a step record: a saga's every message must reach its participants while
 * their records of it are kept (retention.ts says why this sum bounds it).
 *  - its forward steps are sent within forwardStepDeadlineMs of the attempt's start, whichever driver
 *    sends them (a driver taken over stops at the same deadline);
 *  - a step may reach its participant up to peerCallTimeoutMs after it was sent (later, its sender
 *    has given it up and sent it again) and then waits for a Redis batch at most transactionBudgetMs;
 *  - compensations follow the decision, and a saga whose peers answer ends within the time a
 *    checkout waits for it, checkoutAnswerDeadlineMs;
 *  - twice the clock skew: the attempt's start is the order service's clock, the record's expiry its
 *    participant's, and Redis expires it by its own.
 */
export function minStepRecordRetentionMs(timing: Timing = TIMING): number {
  return (
    timing.forwardStepDeadlineMs +
    timing.peerCallTimeoutMs +
    timing.transactionBudgetMs +
    timing.checkoutAnswerDeadlineMs +
    2 * timing.maxClockSkewMs
  );
}

/** TIMING's shape with plain numbers, so tests can hand in shorter timeouts. */
export type Timing = { readonly [K in keyof typeof TIMING]: number };
