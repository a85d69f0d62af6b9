/**
 * A real `redis-server` for a test: its own free port, its own temporary data folder (AOF on, no RDB
 * snapshots, like redis/redis.conf), started and stopped by the test that needs it. Given `logFor`,
 * the service's log writer runs beside it, in the test's process, started and stopped with it as
 * start_redis_with_recovery.sh does: without it, no change is ever answered.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect } from "node:net";
import { Redis } from "ioredis";
import type { ServiceName } from "../../src/config";
import { LogWriter } from "../../src/log-writer";

/** How long a redis-server may take to answer its first PING. */
const STARTUP_DEADLINE_MS = 10_000;
/** How long a stopping redis-server may take to exit before it is killed. */
const STOP_DEADLINE_MS = 10_000;
/** Attempts at a fresh port when another process took ours between the probe and the bind. */
const PORT_ATTEMPTS = 5;

export type RedisServer = {
  port: number;
  dir: string;
  url: string;
  /** SIGTERM, wait for the exit, remove the data folder. */
  stop(): Promise<void>;
  /** SIGKILL (a crash), wait for the exit; the data folder stays for restart(). */
  kill(): Promise<void>;
  /** Starts it again on the same port and data folder (it loads its AOF), and its writer with it. */
  restart(): Promise<void>;
  /** The log writer beside it (with `logFor`), while it runs. */
  writer(): LogWriter | undefined;
  /** Stops its writer (as if it were down) until resumeWriter(): lines wait in the stream meanwhile. */
  holdWriter(): Promise<void>;
  resumeWriter(): Promise<void>;
};

export type RedisOptions = {
  /** Extra `--name value` arguments for redis-server. */
  args?: string[];
  /** The service whose log writer runs beside this Redis, and its log folder (a temporary one, removed by stop(), if omitted). */
  logFor?: { service: ServiceName; logDir?: string; compactBytes?: number };
};

/** Large enough that no test's log is compacted unless the test asks for it. */
const DEFAULT_LOG_COMPACT_BYTES = 1024 * 1024 * 1024;

/** A log writer on the Redis at `port`, in this process, with connections of its own. */
export async function startWriter(
  port: number,
  logFor: { service: ServiceName; logDir: string; compactBytes?: number },
): Promise<LogWriter> {
  const connection = () => {
    const redis = new Redis({ host: "127.0.0.1", port, retryStrategy: () => null, maxRetriesPerRequest: 0 });
    redis.on("error", () => {});
    return redis;
  };
  return LogWriter.start({
    service: logFor.service,
    logDir: logFor.logDir,
    redis: connection(),
    upkeepRedis: connection(),
    compactBytes: logFor.compactBytes ?? DEFAULT_LOG_COMPACT_BYTES,
    instanceId: `test-writer-${logFor.service}`,
  });
}

/** A TCP port on 127.0.0.1 that nothing listened on a moment ago. */
export async function freePort(): Promise<number> {
  const listener = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = listener.port;
  listener.stop(true);
  return port;
}

/** Resolves true once the server at `port` answers PING with PONG. */
export function ping(port: number, host = "127.0.0.1"): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ port, host });
    let reply = "";
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1_000, () => done(false));
    socket.on("error", () => done(false));
    socket.on("connect", () => socket.write("PING\r\n"));
    socket.on("data", (chunk) => {
      reply += chunk.toString();
      if (reply.includes("\r\n")) done(reply.startsWith("+PONG"));
    });
  });
}

export async function startRedis(opts: RedisOptions = {}): Promise<RedisServer> {
  const dir = mkdtempSync(join(tmpdir(), "checkout-redis-"));
  const logFor = opts.logFor && { ...opts.logFor, logDir: opts.logFor.logDir ?? join(dir, "logging") };
  let port = 0;
  let child: ReturnType<typeof Bun.spawn> | undefined;
  let writer: LogWriter | undefined;

  const launch = async (): Promise<boolean> => {
    child = Bun.spawn(
      [
        "redis-server",
        "--port",
        String(port),
        "--bind",
        "127.0.0.1",
        "--dir",
        dir,
        "--appendonly",
        "yes",
        "--save",
        "",
        "--daemonize",
        "no",
        "--protected-mode",
        "no",
        "--loglevel",
        "warning",
        ...(opts.args ?? []),
      ],
      { stdout: "ignore", stderr: "ignore" },
    );
    const deadline = Date.now() + STARTUP_DEADLINE_MS;
    while (Date.now() < deadline) {
      if (child.exitCode !== null || child.signalCode !== null) return false;
      if (await ping(port)) return true;
      await Bun.sleep(10);
    }
    child.kill("SIGKILL");
    await child.exited;
    throw new Error(`redis-server on port ${port} did not answer PING within ${STARTUP_DEADLINE_MS} ms`);
  };

  const exit = async (signal: "SIGTERM" | "SIGKILL") => {
    // The writer never outlives its Redis (log-writer.ts).
    await writer?.stop();
    writer = undefined;
    const running = child;
    if (!running || running.exitCode !== null || running.signalCode !== null) return;
    running.kill(signal);
    const forced = setTimeout(() => running.kill("SIGKILL"), STOP_DEADLINE_MS);
    await running.exited;
    clearTimeout(forced);
  };

  for (let attempt = 0; ; attempt++) {
    port = await freePort();
    if (await launch()) break;
    if (attempt + 1 >= PORT_ATTEMPTS) {
      rmSync(dir, { recursive: true, force: true });
      throw new Error(`redis-server did not start after ${PORT_ATTEMPTS} ports`);
    }
  }
  if (logFor) writer = await startWriter(port, logFor);

  return {
    port,
    dir,
    url: `redis://127.0.0.1:${port}`,
    async stop() {
      await exit("SIGTERM");
      rmSync(dir, { recursive: true, force: true });
    },
    kill: () => exit("SIGKILL"),
    async restart() {
      await exit("SIGTERM");
      if (!(await launch())) throw new Error(`redis-server could not restart on port ${port}`);
      if (logFor) writer = await startWriter(port, logFor);
    },
    writer: () => writer,
    async holdWriter() {
      await writer?.stop();
      writer = undefined;
    },
    async resumeWriter() {
      if (logFor && !writer) writer = await startWriter(port, logFor);
    },
  };
}
