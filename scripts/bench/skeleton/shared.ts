/**
 * What the three skeleton services have in common: the real services' configuration, one Redis
 * connection, a JSON reply, and the /health route the stack supervisor probes.
 *
 * The skeletons measure the ceiling of the architecture on this machine (gateway, three Bun
 * processes, three Redis servers, one hop to each peer per checkout) with no business logic at all,
 * so that a real service's throughput can be read as a fraction of what the topology itself allows.
 */
import Redis from "ioredis";
import { loadConfig, type ServiceConfig, type ServiceName } from "../../../common/src/config";

export type SkeletonRoutes = Record<string, { POST: (req: Bun.BunRequest) => Response | Promise<Response> }>;

const JSON_HEADERS = { "content-type": "application/json" } as const;

export function json(body: unknown, status = 200): Response {
  return new Response(JSON.stringify(body), { status, headers: JSON_HEADERS });
}

export function connectRedis(config: ServiceConfig): Redis {
  // Auto-pipelining batches the commands issued in one event-loop tick into one write, as a
  // well-tuned real service would; the skeleton is meant to be the best the topology can do.
  return new Redis({ host: config.redis.host, port: config.redis.port, enableAutoPipelining: true });
}

/** Serves `routes` plus GET /health on the configured port; stops cleanly on SIGTERM/SIGINT. */
export function serveSkeleton(
  service: ServiceName,
  build: (config: ServiceConfig, redis: Redis) => SkeletonRoutes,
): void {
  const config = loadConfig(service);
  const redis = connectRedis(config);
  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: config.port,
    routes: {
      "/health": { GET: () => json({ status: "ok", service, skeleton: true }) },
      ...build(config, redis),
    },
    fetch: () => json({ error: "unknown_route", message: "the skeleton answers only its benchmark routes" }, 404),
    error: (err) => json({ error: "skeleton_failure", message: String(err) }, 500),
  });
  console.log(`[skeleton-${service}] listening on ${server.url} (redis ${config.redis.host}:${config.redis.port})`);

  const stop = (): void => {
    server.stop(true);
    redis.disconnect();
    process.exit(0);
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}
