/**
 * Redis connections. One shared, auto-pipelined client serves plain reads; every optimistic
 * transaction (a batch of them, see batch.ts) borrows a connection of its own from the pool, because
 * WATCH belongs to a connection and would interleave with other transactions on a shared one.
 */
import { Redis, type RedisOptions } from "ioredis";
import diagnostics from "node:diagnostics_channel";

/**
 * Bun's TracingChannel has no `hasSubscribers` (Node's has); ioredis reads its absence as "someone is
 * listening" and wraps every command in tracing work (argument sanitising by regex, extra promises):
 * about a tenth of the order service's CPU in a profile. Define it as Node does.
 */
const tracingPrototype = Object.getPrototypeOf(diagnostics.tracingChannel("checkout:probe")) as object;
if (!("hasSubscribers" in tracingPrototype)) {
  Object.defineProperty(tracingPrototype, "hasSubscribers", {
    get(this: Record<string, { hasSubscribers?: boolean } | undefined>) {
      return ["start", "end", "asyncStart", "asyncEnd", "error"].some((event) => this[event]?.hasSubscribers === true);
    },
  });
}

/** How long to wait between reconnection attempts to a Redis that went away (it is restarting). */
const RECONNECT_DELAY_MS = 100;

/**
 * Settings for every connection. A command in flight when the connection drops is NOT resent: an
 * EXEC resent on a new connection would run without its WATCH, so its outcome is reported as unknown
 * instead. With the offline queue off, commands issued while Redis is down fail at once (503).
 */
export function connectionOptions(host: string, port: number): RedisOptions {
  return {
    host,
    port,
    enableOfflineQueue: false,
    autoResendUnfulfilledCommands: false,
    maxRetriesPerRequest: 0,
    retryStrategy: () => RECONNECT_DELAY_MS,
    connectTimeout: 2_000,
    lazyConnect: false,
  };
}

export function connect(host: string, port: number, extra: RedisOptions = {}): Redis {
  const client = new Redis({ ...connectionOptions(host, port), ...extra });
  // Errors surface on the commands that hit them; the event would otherwise print on every retry.
  client.on("error", () => {});
  return client;
}

/** A fixed-size pool of dedicated connections, handed out one transaction at a time. */
export class ConnectionPool {
  private readonly idle: Redis[] = [];
  private readonly waiting: Array<(conn: Redis) => void> = [];
  private readonly all: Redis[] = [];
  get connections(): readonly Redis[] {
    return this.all;
  }

  constructor(host: string, port: number, size: number) {
    for (let i = 0; i < size; i++) {
      const conn = connect(host, port);
      this.all.push(conn);
      this.idle.push(conn);
    }
  }

  acquire(): Promise<Redis> {
    const conn = this.idle.pop();
    if (conn) return Promise.resolve(conn);
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  release(conn: Redis): void {
    const next = this.waiting.shift();
    if (next) next(conn);
    else this.idle.push(conn);
  }

  async close(): Promise<void> {
    await Promise.all(this.all.map((c) => c.quit().catch(() => c.disconnect())));
  }
}
