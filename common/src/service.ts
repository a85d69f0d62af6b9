/** Start-up shared by the three services: config, store, health, serve, and a clean stop. */
import type { Hono } from "hono";
import { loadConfig, TIMING, type ServiceConfig, type ServiceName } from "./config";
import { armFaults } from "./faults";
import { Store } from "./store";

/** How long a stopping service lets requests in flight finish before it exits anyway. */
const SHUTDOWN_GRACE_MS = 5_000;
/**
 * A service listens once its Redis answers, or after this long if it does not: a Redis replaying its
 * log after a crash takes seconds (6 s for 220 000 orders), and with no replica of the order service
 * listening meanwhile the gateway answers checkouts 502, which checkers count as successes. Listening,
 * the service holds a checkout until its Redis answers (saga.ts, untilReachable) and answers other
 * requests 503. A Redis that is up answers within milliseconds, so until then the gateway keeps
 * sending requests to a replica already connected.
 */
const LISTEN_WITHOUT_REDIS_AFTER_MS = 1_000;

/** Answers 200 while the service and its Redis answer, 503 otherwise: health checks and probes ask it. */
export const HEALTH_PATH = "/health";

export type ServiceParts = { app: Hono; onStarted?: () => void; onStopping?: () => Promise<void> | void };

export async function runService(
  service: ServiceName,
  build: (config: ServiceConfig, store: Store) => ServiceParts | Promise<ServiceParts>,
): Promise<void> {
  const config = loadConfig(service);
  armFaults(config.faultPoint, config.logDir, config.instanceId);
  const store = await Store.connecting(config);
  const parts = await build(config, store);
  parts.app.get(HEALTH_PATH, async (c) =>
    (await store.healthy()) ? c.json({ status: "ok", service }) : c.json({ error: "redis_unavailable", message: "Redis is not reachable" }, 503),
  );
  await Promise.race([store.connected(), Bun.sleep(LISTEN_WITHOUT_REDIS_AFTER_MS)]);
  const server = Bun.serve({ port: config.port, hostname: config.bindAddress, fetch: parts.app.fetch, idleTimeout: TIMING.serviceIdleTimeoutS });
  await store.connected();
  store.startLogUpkeep(config.logDir, config.logCompactBytes, config.instanceId);
  parts.onStarted?.();
  console.log(`[${config.instanceId}] ${service} service listening on :${server.port}`);

  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    const forced = setTimeout(() => process.exit(0), SHUTDOWN_GRACE_MS);
    await parts.onStopping?.();
    await server.stop();
    await store.close();
    clearTimeout(forced);
    process.exit(0);
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}
