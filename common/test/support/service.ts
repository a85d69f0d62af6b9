/**
 * A service started in-process for a test, built by its own `build` as its main.ts builds it, served
 * over real HTTP on a free port. Tests talk to it with fetch, exactly as the gateway would.
 */
import { afterAll, beforeAll } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DEFAULT_STEP_RECORD_RETENTION_S, type ServiceConfig, type ServiceName } from "@checkout/common/config";
import { TIMING } from "@checkout/common/timing";
import type { StepRetention } from "@checkout/common/retention";
import type { Service, ServiceDeps } from "@checkout/common/service";
import { Store } from "@checkout/common/store";
import { build as buildOrder } from "../../../order/src/service";
import type { Checkout } from "../../../order/src/saga";
import { build as buildPayment } from "../../../payment/src/service";
import { build as buildStock } from "../../../stock/src/service";
import { TEST_INTERNAL_SECRET } from "./http";
import { startRedis, type RedisServer } from "./redis-server";
import { redisState, type RedisState } from "./redis-state";

/** A service replica on a Redis: the service's log is written by the writer beside that Redis (redis-server.ts). */
export type ServiceOptions = {
  redisPort: number;
  stockUrls?: string[];
  paymentUrls?: string[];
  instanceId?: string;
  redisPoolSize?: number;
  /** How stock and payment keep saga step records: the configured default if omitted. */
  retention?: StepRetention;
  /** Whether the service starts its background work (the order service's sweeps and liveness key). Default true. */
  sweeps?: boolean;
};

export type RunningService = {
  url: string;
  store: Store;
  config: ServiceConfig;
  /** The order service's saga driver (order only). */
  checkout?: Checkout;
  stop(): Promise<void>;
};

export function serviceConfig(service: ServiceName, opts: ServiceOptions): ServiceConfig {
  return {
    service,
    port: 0,
    metricsPort: 0,
    bindAddress: "127.0.0.1",
    internalSecret: TEST_INTERNAL_SECRET,
    redis: { host: "127.0.0.1", port: opts.redisPort },
    stockUrls: opts.stockUrls ?? [],
    paymentUrls: opts.paymentUrls ?? [],
    peerBalancing: "active-standby",
    instanceId: opts.instanceId ?? `test-${service}-${crypto.randomUUID().slice(0, 8)}`,
    redisPoolSize: opts.redisPoolSize ?? 16,
    stepRecordRetentionMs: opts.retention?.retentionMs ?? DEFAULT_STEP_RECORD_RETENTION_S * 1000,
    faultPoint: undefined,
    faultDir: tmpdir(),
  };
}

const BUILDS: Record<ServiceName, (config: ServiceConfig, deps: ServiceDeps) => Service & { checkout?: Checkout }> = {
  order: buildOrder,
  stock: buildStock,
  payment: buildPayment,
};

export async function startService(service: ServiceName, opts: ServiceOptions): Promise<RunningService> {
  const config = serviceConfig(service, opts);
  const deps: ServiceDeps = { store: await Store.open(config), retention: opts.retention };
  const built = BUILDS[service](config, deps);
  const server = Bun.serve({
    hostname: config.bindAddress,
    port: config.port,
    fetch: built.app.fetch,
    idleTimeout: TIMING.serviceIdleTimeoutS,
  });
  if (opts.sweeps ?? true) await built.start?.();

  return {
    url: `http://127.0.0.1:${server.port}`,
    store: deps.store,
    config,
    checkout: built.checkout,
    async stop() {
      await built.stop?.();
      await server.stop(true);
      await deps.store.close();
    },
  };
}

/**
 * For a test file about one service: a Redis of its own and the service on it, started before the
 * file's tests and stopped after them. `url` and `state` (the whole Redis) are for its tests.
 */
export function serviceOnItsOwnRedis(service: ServiceName): {
  url: (path: string) => string;
  state: () => Promise<RedisState>;
  /** Stops the service's Redis under it (for tests of a service whose database is gone). */
  stopRedis: () => Promise<void>;
} {
  let redis: RedisServer | undefined;
  let running: RunningService | undefined;
  const logDir = mkdtempSync(join(tmpdir(), `checkout-${service}-log-`));
  beforeAll(async () => {
    redis = await startRedis({ logFor: { service, logDir } });
    running = await startService(service, { redisPort: redis.port });
  });
  afterAll(async () => {
    await running?.stop();
    await redis?.stop();
    rmSync(logDir, { recursive: true, force: true });
  });
  return {
    url: (path) => running!.url + path,
    state: () => redisState(running!.store.client),
    stopRedis: () => redis!.stop(),
  };
}

export type StoreFixture = { redis: RedisServer; logDir: string; store: Store };

/**
 * For a test file about the store itself: a Redis of its own with its log writer, a fresh log folder
 * and a Store of `service` on them, opened before the file's tests (its fields are set then) and
 * closed after them.
 */
export function storeOnItsOwnRedis(service: ServiceName): StoreFixture {
  const fixture = {} as StoreFixture;
  beforeAll(async () => {
    fixture.logDir = mkdtempSync(join(tmpdir(), `checkout-${service}-store-`));
    fixture.redis = await startRedis({ logFor: { service, logDir: fixture.logDir } });
    fixture.store = await Store.open(serviceConfig(service, { redisPort: fixture.redis.port }));
  });
  afterAll(async () => {
    await fixture.store?.close();
    await fixture.redis?.stop();
    if (fixture.logDir) rmSync(fixture.logDir, { recursive: true, force: true });
  });
  return fixture;
}
