/**
 * Every port, address, timeout and retry bound of the system, in one place.
 * Values that differ between deployments come from the environment (parsed with zod, a bad value
 * stops the process); the rest are named constants.
 */
import { readFileSync } from "node:fs";
import { hostname } from "node:os";
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
  .transform((s) => s.split(",").map((u) => u.trim()).filter(Boolean))
  .pipe(z.array(z.url()).min(1));

/** The shortest internal secret accepted: 32 characters, e.g. `openssl rand -hex 32` gives 64. */
export const MIN_INTERNAL_SECRET_LENGTH = 32;

const envSchema = z.object({
  PORT: port.optional(),
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
  LOG_DIR: z.string().min(1).default(resolve(REPO_ROOT, "logging")),
  STOCK_URLS: urlList.default([`http://127.0.0.1:${DEFAULT_PORTS.serviceBase.stock + 1}`]),
  PAYMENT_URLS: urlList.default([`http://127.0.0.1:${DEFAULT_PORTS.serviceBase.payment + 1}`]),
  INSTANCE_ID: z.string().min(1).default(`${hostname()}-${process.pid}`),
  /** How the order service spreads its calls over STOCK_URLS and over PAYMENT_URLS. */
  PEER_BALANCING: z.enum(BALANCINGS).default(DEFAULT_BALANCING),
  /** Connections for transactions: one for the batches, the others for batch_init's parallel chunks. */
  REDIS_POOL_SIZE: z.coerce.number().int().min(1).max(1024).default(10),
  /** The log is compacted into the snapshot once it grows past this many bytes. */
  LOG_COMPACT_BYTES: z.coerce.number().int().min(1024).default(64 * 1024 * 1024),
  /** Test-only: the name of a crash point at which the process exits abruptly (see faults.ts). */
  FAULT_POINT: z.string().optional(),
});

export type ServiceConfig = {
  service: ServiceName;
  port: number;
  bindAddress: string;
  internalSecret: string;
  redis: { host: string; port: number };
  logDir: string;
  stockUrls: string[];
  paymentUrls: string[];
  peerBalancing: Balancing;
  instanceId: string;
  redisPoolSize: number;
  logCompactBytes: number;
  faultPoint: string | undefined;
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
  return {
    service,
    port: e.PORT ?? DEFAULT_PORTS.serviceBase[service] + 1,
    bindAddress: e.BIND_ADDRESS,
    internalSecret,
    redis: { host: e.REDIS_HOST, port: e.REDIS_PORT ?? DEFAULT_PORTS.redis[service] },
    logDir: e.LOG_DIR,
    stockUrls: e.STOCK_URLS,
    paymentUrls: e.PAYMENT_URLS,
    peerBalancing: e.PEER_BALANCING,
    instanceId: e.INSTANCE_ID,
    redisPoolSize: e.REDIS_POOL_SIZE,
    logCompactBytes: e.LOG_COMPACT_BYTES,
    faultPoint: e.FAULT_POINT,
  };
}

/** The internal secret from the variable or from its file, or what is wrong with them. */
export function readInternalSecret(value: string | undefined, file: string | undefined): string | { problem: string } {
  if (value !== undefined && file !== undefined) return { problem: "set INTERNAL_SECRET or INTERNAL_SECRET_FILE, not both" };
  let secret = value;
  if (file !== undefined) {
    try {
      secret = readFileSync(file, "utf8").trim();
    } catch (error) {
      return { problem: `INTERNAL_SECRET_FILE ${file} cannot be read: ${(error as Error).message}` };
    }
  }
  if (secret === undefined) {
    return { problem: "INTERNAL_SECRET (or INTERNAL_SECRET_FILE) is not set: the secret every service replica shares; bun run up and compose generate one" };
  }
  if (secret.length < MIN_INTERNAL_SECRET_LENGTH) return { problem: `the internal secret must be at least ${MIN_INTERNAL_SECRET_LENGTH} characters` };
  return secret;
}

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
  /** How long a saga keeps retrying a forward step whose outcome is unknown before it compensates. */
  forwardStepDeadlineMs: 10_000,
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
  /** Log lines committed to Redis but not yet written to the log for this long are re-appended by any process. */
  orphanLogLineAgeMs: 1_000,
  orphanLogSweepIntervalMs: 1_000,
  /** How often each process checks whether its service log has outgrown LOG_COMPACT_BYTES. */
  compactionCheckIntervalMs: 10_000,
  /** A compaction holds its service-wide lock at most this long (a crashed compactor's lock expires). */
  compactionLockMs: 300_000,
  /**
   * A service closes a connection idle for this long, and Bun counts a request still being handled
   * without output as idle: the longest request, a batch_init of the most entities, must end within
   * it. Bun's maximum.
   */
  serviceIdleTimeoutS: 255,
} as const;

/** TIMING's shape with plain numbers, so tests can hand in shorter timeouts. */
export type Timing = { readonly [K in keyof typeof TIMING]: number };
