/**
 * The one shape of a service. Each service exports `build(config, deps)` (its src/service.ts), which
 * wires its app, stores, peers and background work; its main.ts loads the config, connects, builds
 * and serves, and the tests build it the same way (common/test/support/service.ts).
 */
import type { Hono } from "hono";
import { z } from "zod";
import { loadConfig, type ServiceConfig, type ServiceName } from "./config";
import { TIMING } from "./timing";
import { armFaults } from "./faults";
import { createApp, documented } from "./http";
import { internalOnly } from "./internal";
import { collectProcessMetrics, metricsText, registry } from "./metrics";
import { OVERVIEW_PATH, readOverview, recordStart } from "./overview";
import type { StepRetention } from "./retention";
import { Store } from "./store";

/** How long a stopping service lets requests in flight finish before it exits anyway. */
const SHUTDOWN_GRACE_MS = 5_000;
/**
 * A service listens once its Redis answers, or after this long if it does not: a Redis replaying its
 * log after a crash takes seconds (docs/benchmarks.md#recovery), and with no replica of the order service
 * listening meanwhile the gateway answers checkouts 502, which checkers count as successes. Listening,
 * the service holds a checkout until its Redis answers (order/src/saga-attempt.ts, untilReachable) and answers other
 * requests 503. A Redis that is up answers within milliseconds, so until then the gateway keeps
 * sending requests to a replica already connected.
 */
const LISTEN_WITHOUT_REDIS_AFTER_MS = 1_000;

/** Answers 200 while the service and its Redis answer, 503 otherwise: health checks and probes ask it. */
export const HEALTH_PATH = "/health";

/**
 * What a service is built on. `retention`: how stock and payment keep saga step records,
 * stepRetention(config) unless a test gives its own.
 */
export type ServiceDeps = { store: Store; retention?: StepRetention };

/** A built service: its app (every route, its own and addServiceRoutes'), and its background work. */
export type Service = {
  app: Hono;
  /** Once it listens and its Redis answers: starts its background work (the order service's sweeps). */
  start?: () => Promise<void>;
  /** Before it stops listening: lets the work it drives finish, and stops its background work. */
  stop?: () => Promise<void>;
};

/**
 * The routes every service has besides its own: `GET /health`, and `GET /internal/overview` (its
 * processes' starts and conservation totals, for the dashboard; internal secret required).
 */
export function addServiceRoutes(
  app: Hono,
  service: ServiceName,
  store: Pick<Store, "healthy" | "client">,
  internalSecret: string,
): void {
  app.get(
    HEALTH_PATH,
    documented("Whether this service and its Redis answer", z.object({ status: z.literal("ok"), service: z.string() })),
    async (c) =>
      (await store.healthy())
        ? c.json({ status: "ok", service })
        : c.json({ error: "redis_unavailable", message: "Redis is not reachable" }, 503),
  );
  app.get(OVERVIEW_PATH, internalOnly(internalSecret), async (c) => c.json(await readOverview(store.client)));
}

/** The service's config, from the environment; its fault point armed (faults.ts). */
export function configFor(service: ServiceName): ServiceConfig {
  const config = loadConfig(service);
  armFaults(config.faultPoint, config.faultDir, config.instanceId);
  return config;
}

/** Its Redis, still being connected: the service listens before it answers (see LISTEN_WITHOUT_REDIS_AFTER_MS). */
export function connect(config: ServiceConfig): ServiceDeps {
  return { store: Store.connecting(config) };
}

/** Serves a built service until SIGTERM or SIGINT, then stops it cleanly. */
export async function serve(config: ServiceConfig, deps: ServiceDeps, service: Service): Promise<void> {
  const { store } = deps;
  await Promise.race([store.connected(), Bun.sleep(LISTEN_WITHOUT_REDIS_AFTER_MS)]);
  const server = Bun.serve({
    port: config.port,
    hostname: config.bindAddress,
    fetch: service.app.fetch,
    idleTimeout: TIMING.serviceIdleTimeoutS,
  });
  const metricsServer = serveMetrics(config);
  await store.connected();
  await recordStart(store.client, config.instanceId).catch(() => {});
  void service.start?.();
  console.log(
    `[${config.instanceId}] ${config.service} service listening on :${server.port}, metrics on :${metricsServer.port}`,
  );

  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    const forced = setTimeout(() => process.exit(0), SHUTDOWN_GRACE_MS);
    await service.stop?.();
    await server.stop();
    await metricsServer.stop();
    await store.close();
    clearTimeout(forced);
    process.exit(0);
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

/**
 * Serves `GET /metrics` on the process's metrics port, to callers presenting the internal secret.
 * Returns the server, so that a stopping service closes it.
 */
export function serveMetrics(config: ServiceConfig): ReturnType<typeof Bun.serve> {
  collectProcessMetrics(config.service);
  const app = createApp(config.service);
  app.use(internalOnly(config.internalSecret));
  app.get("/metrics", async (c) => c.body(await metricsText(), 200, { "content-type": registry.contentType }));
  return Bun.serve({ port: config.metricsPort, hostname: config.bindAddress, fetch: app.fetch });
}
