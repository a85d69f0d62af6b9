/**
 * A service started in-process for a test, wired as its main.ts wires it, served over real HTTP on a
 * free port. Tests talk to it with fetch, exactly as the gateway would.
 */
import { afterAll, beforeAll } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Hono } from "hono";
import { TIMING, type ServiceConfig, type ServiceName } from "@checkout/common/config";
import { Store } from "@checkout/common/store";
import { stockApp } from "../../../stock/src/app";
import { createStock } from "../../../stock/src/stock";
import { paymentApp } from "../../../payment/src/app";
import { createPayment } from "../../../payment/src/payment";
import { orderApp } from "../../../order/src/app";
import { createOrders } from "../../../order/src/orders";
import { createPeers } from "../../../order/src/peers";
import { createCheckout, type Checkout } from "../../../order/src/saga";
import { TEST_INTERNAL_SECRET } from "./http";
import { startRedis, type RedisServer } from "./redis-server";
import { redisState, type RedisState } from "./redis-state";

/** Large enough that no test's log is compacted unless the test asks for it. */
const DEFAULT_LOG_COMPACT_BYTES = 1024 * 1024 * 1024;
/** How long stop() lets the order service's sagas in flight finish (as main.ts does). */
const SAGA_DRAIN_MS = 3_000;

export type ServiceOptions = {
  redisPort: number;
  /** The folder of the service log; a fresh temporary one (removed on stop) if omitted. */
  logDir?: string;
  stockUrls?: string[];
  paymentUrls?: string[];
  instanceId?: string;
  redisPoolSize?: number;
  logCompactBytes?: number;
  /** Whether the background upkeep runs, as in main.ts (orphaned log lines, compaction; the order service's abandoned sagas). Default true. */
  sweeps?: boolean;
};

export type RunningService = {
  url: string;
  store: Store;
  config: ServiceConfig;
  logDir: string;
  /** The order service's saga driver (order only). */
  checkout?: Checkout;
  stop(): Promise<void>;
};

export function serviceConfig(service: ServiceName, opts: ServiceOptions & { logDir: string }): ServiceConfig {
  return {
    service,
    port: 0,
    bindAddress: "127.0.0.1",
    internalSecret: TEST_INTERNAL_SECRET,
    redis: { host: "127.0.0.1", port: opts.redisPort },
    logDir: opts.logDir,
    stockUrls: opts.stockUrls ?? [],
    paymentUrls: opts.paymentUrls ?? [],
    peerBalancing: "active-standby",
    instanceId: opts.instanceId ?? `test-${service}-${crypto.randomUUID().slice(0, 8)}`,
    redisPoolSize: opts.redisPoolSize ?? 16,
    logCompactBytes: opts.logCompactBytes ?? DEFAULT_LOG_COMPACT_BYTES,
    faultPoint: undefined,
  };
}

export async function startService(service: ServiceName, opts: ServiceOptions): Promise<RunningService> {
  const ownsLogDir = opts.logDir === undefined;
  const logDir = opts.logDir ?? mkdtempSync(join(tmpdir(), `checkout-${service}-log-`));
  const config = serviceConfig(service, { ...opts, logDir });
  const store = await Store.open(config);
  const sweeps = opts.sweeps ?? true;

  let app: Hono;
  let checkout: Checkout | undefined;
  switch (service) {
    case "stock":
      app = stockApp(createStock(store), config.internalSecret);
      break;
    case "payment":
      app = paymentApp(createPayment(store), config.internalSecret);
      break;
    case "order": {
      const orders = createOrders(store, config.instanceId, TIMING.sagaLeaseMs);
      const peers = createPeers(config.stockUrls, config.paymentUrls, config.internalSecret);
      checkout = createCheckout(orders, peers);
      app = orderApp(orders, checkout, peers);
      break;
    }
  }

  const server = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: app.fetch, idleTimeout: TIMING.serviceIdleTimeoutS });
  if (sweeps) {
    store.startLogUpkeep(logDir, config.logCompactBytes, config.instanceId);
    checkout?.start();
  }

  return {
    url: `http://127.0.0.1:${server.port}`,
    store,
    config,
    logDir,
    checkout,
    async stop() {
      if (checkout) {
        checkout.stopSweeping();
        const until = Date.now() + SAGA_DRAIN_MS;
        while (checkout.inFlight() > 0 && Date.now() < until) await Bun.sleep(20);
        checkout.stop();
      }
      await server.stop(true);
      await store.close();
      if (ownsLogDir) rmSync(logDir, { recursive: true, force: true });
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
  beforeAll(async () => {
    redis = await startRedis();
    running = await startService(service, { redisPort: redis.port });
  });
  afterAll(async () => {
    await running?.stop();
    await redis?.stop();
  });
  return { url: (path) => running!.url + path, state: () => redisState(running!.store.client), stopRedis: () => redis!.stop() };
}

export type StoreFixture = { redis: RedisServer; logDir: string; store: Store };

/**
 * For a test file about the store itself: a Redis of its own, a fresh log folder and a Store of
 * `service` on them, opened before the file's tests (its fields are set then) and closed after them.
 */
export function storeOnItsOwnRedis(service: ServiceName): StoreFixture {
  const fixture = {} as StoreFixture;
  beforeAll(async () => {
    fixture.redis = await startRedis();
    fixture.logDir = mkdtempSync(join(tmpdir(), `checkout-${service}-store-`));
    fixture.store = await Store.open(serviceConfig(service, { redisPort: fixture.redis.port, logDir: fixture.logDir }));
  });
  afterAll(async () => {
    await fixture.store?.close();
    await fixture.redis?.stop();
    if (fixture.logDir) rmSync(fixture.logDir, { recursive: true, force: true });
  });
  return fixture;
}
