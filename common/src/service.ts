/** Start-up shared by the three services: config, store, health, serve, and a clean stop. */
import type { Hono } from "hono";
import { loadConfig, TIMING, type ServiceConfig, type ServiceName } from "./config";
import { armFaults } from "./faults";
import { collectProcessMetrics, metricsText, registry } from "./metrics";
import { z } from "zod";
import { createApp, documented } from "./http";
import { internalOnly } from "./internal";
import { OVERVIEW_PATH, readOverview, recordStart } from "./overview";
import { Store } from "./store";

/** How long a stopping service lets requests in flight finish before it exits anyway. */
const SHUTDOWN_GRACE_MS = 5_000;
/**
 * A service listens once its Redis answers, or after this long if it does not: a Redis replaying its
 * log after a crash takes seconds (docs/benchmarks.md#recovery), and with no replica of the order service
 * listening meanwhile the gateway answers checkouts 502, which checkers count as successes. Listening,
 * the service holds a checkout until its Redis answers (saga.ts, untilReachable) and answers other
 * requests 503. A Redis that is up answers within milliseconds, so until then the gateway keeps
 * sending requests to a replica already connected.
 */
const LISTEN_WITHOUT_REDIS_AFTER_MS = 1_000;

/** Answers 200 while the service and its Redis answer, 503 otherwise: health checks and probes ask it. */
export const HEALTH_PATH = "/health";
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

export type ServiceParts = { app: Hono; onStarted?: () => void; onStopping?: () => Promise<void> | void };

export async function runService(
  service: ServiceName,
  build: (config: ServiceConfig, store: Store) => ServiceParts | Promise<ServiceParts>,
): Promise<void> {
  const config = loadConfig(service);
  armFaults(config.faultPoint, config.faultDir, config.instanceId);
  const store = Store.connecting(config);
  const parts = await build(config, store);
  addServiceRoutes(parts.app, service, store, config.internalSecret);
  await Promise.race([store.connected(), Bun.sleep(LISTEN_WITHOUT_REDIS_AFTER_MS)]);
  const server = Bun.serve({
    port: config.port,
    hostname: config.bindAddress,
    fetch: parts.app.fetch,
    idleTimeout: TIMING.serviceIdleTimeoutS,
  });
  const metricsServer = serveMetrics(config);
  await store.connected();
  await recordStart(store.client, config.instanceId).catch(() => {});
  parts.onStarted?.();
  console.log(
    `[${config.instanceId}] ${service} service listening on :${server.port}, metrics on :${metricsServer.port}`,
  );

  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    const forced = setTimeout(() => process.exit(0), SHUTDOWN_GRACE_MS);
    await parts.onStopping?.();
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
