/**
 * The ports, addresses and bounds an operator sets or a reader reasons about across services: the
 * environment, parsed with zod (a bad value stops the process), for the services (loadConfig) and for
 * the log writer (loadWriterConfig). The timeouts several modules rely on are in timing.ts.
 */
import { readFileSync } from "node:fs";
import { hostname, tmpdir } from "node:os";
import { resolve } from "node:path";
import { z } from "zod";
import { minStepRecordRetentionMs } from "./timing";

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

/** A day, as Stripe keeps idempotency keys. */
export const DEFAULT_STEP_RECORD_RETENTION_S = 24 * 60 * 60;

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
        "INTERNAL_SECRET (or INTERNAL_SECRET_FILE) is not set: the secret every service replica shares; " +
        "bun run up and compose generate one",
    };
  }
  if (secret.length < MIN_INTERNAL_SECRET_LENGTH)
    return { problem: `the internal secret must be at least ${MIN_INTERNAL_SECRET_LENGTH} characters` };
  return secret;
}
