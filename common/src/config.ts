/**
 * The ports, addresses, timeouts and bounds an operator sets or a reader reasons about across
 * services: the environment (parsed with zod, a bad value stops the process) and TIMING, whose
 * timeouts bound each other (minStepRecordRetentionMs). A constant that matters to one module alone
 * lives beside its use, named: the saga's polling and retry backoff (order/src/saga.ts), the conflict
 * backoff and batch size (group-commit.ts), reconnecting (redis.ts), shutdown and listening without
 * Redis (service.ts), the order service's drain (order/src/main.ts), nginx's (gateway/render.ts).
 */
import { readFileSync } from "node:fs";
import { hostname, tmpdir } from "node:os";
import { resolve } from "node:path";
import { z } from "zod";

export type ServiceName = "order" | "stock" | "payment";
export const SERVICES: readonly ServiceName[] = ["order", "stock", "payment"];

/** Default ports of the local stack. Replica i (1-based) of a service listens on base + i. */
export const DEFAULT_PORTS = {
  gateway: 8000,
  serviceBase: { order: 8100, stock: 8200, payment: 8300 } satisfies Record<ServiceName, number>,
  redis: { order: 6381, stock: 6382, payment: 6383 } satisfies Record<ServiceName, number>,
} as const;

/**
 * Each service process serves its Prometheus metrics on a port of its own: its service port plus this
 * (replica 1 of order: 8601, of stock 8701, of payment 8801). Not a port the gateway proxies to. Every
 * port of a stack stays below its gateway's + 1000, so stacks shifted by multiples of 1000 never meet.
 */
export const METRICS_PORT_SHIFT = 500;

/**
 * How requests are spread over the replicas of a service, by the gateway and by the order service's
 * calls to stock and payment. `active-standby`: the first replica takes every request and the others
 * stand in while it is down (one busy process per service batches more per round trip, which two
 * cores favour). `round-robin`: every replica takes its turn, as a Kubernetes Service spreads
 * connections over its ready pods. Either is correct: every request may reach any replica.
 */
export const BALANCINGS = ["active-standby", "round-robin"] as const;
export type Balancing = (typeof BALANCINGS)[number];
export const DEFAULT_BALANCING: Balancing = "active-standby";

/** The repository root: common/src/config.ts is two folders below it. */
export const REPO_ROOT = resolve(import.meta.dir, "..", "..");

const port = z.coerce.number().int().min(1).max(65535);
const urlList = z
  .string()
  .transform((s) =>
    s
      .split(",")
      .map((u) => u.trim())
      .filter(Boolean),
  )
  .pipe(z.array(z.url()).min(1));

/** The shortest internal secret accepted: 32 characters, e.g. `openssl rand -hex 32` gives 64. */
export const MIN_INTERNAL_SECRET_LENGTH = 32;

/** Timeouts and retry bounds, named so that a reader can find and reason about each one. */
export const TIMING = {
  /** A single service-to-service HTTP call; a slower answer is treated as "outcome unknown". */
  peerCallTimeoutMs: 2_000,
  /**
   * Connecting to a peer's replica. Its kernel accepts a connection within a millisecond however busy
   * the replica is; no connection by then means its address leads nowhere (a container that stopped).
   */
  peerConnectTimeoutMs: 300,
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

/** A day, as Stripe keeps idempotency keys. */
export const DEFAULT_STEP_RECORD_RETENTION_S = 24 * 60 * 60;

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

/** Test-only: crash points (see faults.ts), and the folder of the files that record those that fired. */
const faultEnv = {
  FAULT_POINT: z.string().optional(),
  FAULT_DIR: z.string().min(1).default(tmpdir()),
};

const envSchema = z.object({
  PORT: port.optional(),
  /** Where GET /metrics is served; default PORT + METRICS_PORT_SHIFT. */
  METRICS_PORT: port.optional(),
  /**
   * Where a service listens: loopback by default, so that only this machine reaches its internal
   * endpoints; a container sets 0.0.0.0 to be reachable on its network.
   */
  BIND_ADDRESS: z.string().min(1).default("127.0.0.1"),
  /**
   * The credential the order service presents on every saga step call, and the only thing stock and
   * payment accept one with. Every replica of a deployment gets the same value, there is no default,
   * and it comes either as the variable itself or, as Docker and Kubernetes secrets are mounted, in
   * the file INTERNAL_SECRET_FILE names (the `_FILE` convention of Docker's official images).
   */
  INTERNAL_SECRET: z.string().optional(),
  INTERNAL_SECRET_FILE: z.string().min(1).optional(),
  REDIS_HOST: z.string().min(1).default("127.0.0.1"),
  REDIS_PORT: port.optional(),
  STOCK_URLS: urlList.default([`http://127.0.0.1:${DEFAULT_PORTS.serviceBase.stock + 1}`]),
  PAYMENT_URLS: urlList.default([`http://127.0.0.1:${DEFAULT_PORTS.serviceBase.payment + 1}`]),
  INSTANCE_ID: z.string().min(1).default(`${hostname()}-${process.pid}`),
  /** How the order service spreads its calls over STOCK_URLS and over PAYMENT_URLS. */
  PEER_BALANCING: z.enum(BALANCINGS).default(DEFAULT_BALANCING),
  /** Connections for transactions: one for the batches, the others for batch_init's parallel chunks. */
  REDIS_POOL_SIZE: z.coerce.number().int().min(1).max(1024).default(10),
  /**
   * How long a saga step's record is kept after its last change, in seconds (see retention.ts). Every
   * replica of stock and payment must be given the same value. A day by default, as Stripe keeps
   * idempotency keys: a thousand times longer than any saga takes while its peers answer.
   */
  STEP_RECORD_RETENTION_S: z.coerce
    .number()
    .int()
    .min(
      Math.ceil(minStepRecordRetentionMs() / 1000),
      `must be at least ${Math.ceil(minStepRecordRetentionMs() / 1000)} s: the longest a saga's steps may take (retention.ts)`,
    )
    .default(DEFAULT_STEP_RECORD_RETENTION_S),
  ...faultEnv,
});

export type ServiceConfig = {
  service: ServiceName;
  port: number;
  metricsPort: number;
  bindAddress: string;
  internalSecret: string;
  redis: { host: string; port: number };
  stockUrls: string[];
  paymentUrls: string[];
  peerBalancing: Balancing;
  instanceId: string;
  redisPoolSize: number;
  stepRecordRetentionMs: number;
  faultPoint: string | undefined;
  faultDir: string;
};

export function loadConfig(service: ServiceName, env: Record<string, string | undefined> = process.env): ServiceConfig {
  const parsed = envSchema.safeParse(env);
  if (!parsed.success) {
    console.error(`[${service}] invalid environment:\n${z.prettifyError(parsed.error)}`);
    process.exit(2);
  }
  const e = parsed.data;
  const internalSecret = readInternalSecret(e.INTERNAL_SECRET, e.INTERNAL_SECRET_FILE);
  if (typeof internalSecret !== "string") {
    console.error(`[${service}] ${internalSecret.problem}`);
    process.exit(2);
  }
  const servicePort = e.PORT ?? DEFAULT_PORTS.serviceBase[service] + 1;
  return {
    service,
    port: servicePort,
    metricsPort: e.METRICS_PORT ?? servicePort + METRICS_PORT_SHIFT,
    bindAddress: e.BIND_ADDRESS,
    internalSecret,
    redis: { host: e.REDIS_HOST, port: e.REDIS_PORT ?? DEFAULT_PORTS.redis[service] },
    stockUrls: e.STOCK_URLS,
    paymentUrls: e.PAYMENT_URLS,
    peerBalancing: e.PEER_BALANCING,
    instanceId: e.INSTANCE_ID,
    redisPoolSize: e.REDIS_POOL_SIZE,
    stepRecordRetentionMs: e.STEP_RECORD_RETENTION_S * 1000,
    faultPoint: e.FAULT_POINT,
    faultDir: e.FAULT_DIR,
  };
}

const writerEnvSchema = z.object({
  LOG_DIR: z.string().min(1).default(resolve(REPO_ROOT, "logging")),
  /** The writer reaches its Redis over this Unix socket (start_redis_with_recovery.sh), else over TCP. */
  REDIS_SOCKET: z.string().min(1).optional(),
  REDIS_HOST: z.string().min(1).default("127.0.0.1"),
  REDIS_PORT: port.optional(),
  /** The log is compacted into the snapshot once it grows past this many bytes. */
  LOG_COMPACT_BYTES: z.coerce
    .number()
    .int()
    .min(1024)
    .default(64 * 1024 * 1024),
  ...faultEnv,
  /** Test-only: crash points armed one at a time, each by a SIGUSR2 (faults.ts). */
  FAULT_POINT_ON_SIGNAL: z.string().optional(),
});

export type WriterConfig = {
  service: ServiceName;
  logDir: string;
  redisSocket: string | undefined;
  redisHost: string;
  redisPort: number;
  compactBytes: number;
  faultPoint: string | undefined;
  faultPointOnSignal: string | undefined;
  faultDir: string;
};

/** The log writer's configuration (log-writer.ts): its service from the command line, the rest from the environment. */
export function loadWriterConfig(
  service: string | undefined,
  env: Record<string, string | undefined> = process.env,
): WriterConfig {
  const parsed = writerEnvSchema.safeParse(env);
  if (!SERVICES.includes(service as ServiceName) || !parsed.success) {
    console.error(
      `usage: log-writer.ts <${SERVICES.join("|")}>${parsed.success ? "" : `\ninvalid environment:\n${z.prettifyError(parsed.error)}`}`,
    );
    process.exit(2);
  }
  const e = parsed.data;
  const name = service as ServiceName;
  return {
    service: name,
    logDir: e.LOG_DIR,
    redisSocket: e.REDIS_SOCKET,
    redisHost: e.REDIS_HOST,
    redisPort: e.REDIS_PORT ?? DEFAULT_PORTS.redis[name],
    compactBytes: e.LOG_COMPACT_BYTES,
    faultPoint: e.FAULT_POINT,
    faultPointOnSignal: e.FAULT_POINT_ON_SIGNAL,
    faultDir: e.FAULT_DIR,
  };
}

/** The internal secret from the variable or from its file, or what is wrong with them. */
export function readInternalSecret(value: string | undefined, file: string | undefined): string | { problem: string } {
  if (value !== undefined && file !== undefined)
    return { problem: "set INTERNAL_SECRET or INTERNAL_SECRET_FILE, not both" };
  let secret = value;
  if (file !== undefined) {
    try {
      secret = readFileSync(file, "utf8").trim();
    } catch (error) {
      return { problem: `INTERNAL_SECRET_FILE ${file} cannot be read: ${(error as Error).message}` };
    }
  }
  if (secret === undefined) {
    return {
      problem:
        "INTERNAL_SECRET (or INTERNAL_SECRET_FILE) is not set: the secret every service replica shares; bun run up and compose generate one",
    };
  }
  if (secret.length < MIN_INTERNAL_SECRET_LENGTH)
    return { problem: `the internal secret must be at least ${MIN_INTERNAL_SECRET_LENGTH} characters` };
  return secret;
}
