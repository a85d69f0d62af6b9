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

/**
 * The connections of one service process to its Redis: the shared client, the pool, and the
 * subscription to the log's durable position (durability.ts). Every loss of any of them is counted:
 * Redis may have died, and a change read or committed before the loss may be gone with it (see
 * Store, DurablePosition).
 */
export class ServiceConnections {
  /** Shared, auto-pipelined: for plain reads and bookkeeping, never for WATCH. */
  readonly client: Redis;
  readonly pool: ConnectionPool;
  /** Subscribed to the durable position; takes no other command. */
  readonly subscriber: Redis;
  private lost = 0;
  private readonly lossListeners: Array<() => void> = [];

  constructor(host: string, port: number, poolSize: number) {
    this.client = connect(host, port, { enableAutoPipelining: true });
    this.pool = new ConnectionPool(host, port, poolSize);
    // A subscription is made again after a reconnection: its commands must wait for the connection.
    this.subscriber = connect(host, port, { enableOfflineQueue: true });
    for (const conn of [this.client, this.subscriber, ...this.pool.connections]) {
      conn.on("close", () => {
        this.lost++;
        for (const listener of this.lossListeners) listener();
      });
    }
  }

  /** Connections lost so far. */
  get losses(): number {
    return this.lost;
  }

  onLoss(listener: () => void): void {
    this.lossListeners.push(listener);
  }

  /** Resolves once every connection is ready (Redis may still be replaying its log). */
  async ready(): Promise<void> {
    await Promise.all([this.client, this.subscriber, ...this.pool.connections].map(untilReady));
  }

  async close(): Promise<void> {
    this.subscriber.disconnect();
    await this.pool.close();
    await this.client.quit().catch(() => this.client.disconnect());
  }
}

/**
 * Subscribes `subscriber` to `channel`, now and each time the connection is ready again. ioredis
 * subscribes again after a reconnection only to the channels it had subscribed to, and with
 * maxRetriesPerRequest 0 a SUBSCRIBE sent before Redis first answers fails: a process that starts
 * before its Redis (pods start in no set order) would otherwise never be subscribed.
 * Resolves once subscribed, or once that first attempt failed.
 */
export function keepSubscribed(subscriber: Redis, channel: string): Promise<void> {
  subscriber.on("ready", () => void subscriber.subscribe(channel).catch(() => {}));
  return subscriber.subscribe(channel).then(
    () => {},
    () => {},
  );
}

export function untilReady(client: Redis): Promise<void> {
  if (client.status === "ready") return Promise.resolve();
  return new Promise((resolve) => client.once("ready", () => resolve()));
}

/** The replies of a pipeline or MULTI, each error thrown. */
export function throwOnReplyError(replies: Array<[Error | null, unknown]> | null): unknown[] {
  if (replies === null) throw new Error("pipeline returned no replies");
  return replies.map(([err, value]) => {
    if (err) throw err;
    return value;
  });
}
