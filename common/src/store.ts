/**
 * The one way a service changes its Redis: an optimistic transaction (WATCH the keys, read them,
 * decide with a pure function, MULTI/EXEC the writes, retry on conflict), answered only once its log
 * line is durable. Transactions are group-committed (group-commit.ts, batch.ts); their lines go to
 * Redis with them, and the service's log writer, beside Redis, writes them to the log file
 * (log-writer.ts, durability.ts). A service process opens no file.
 */
import type { Redis } from "ioredis";
import type { ServiceConfig, ServiceName } from "./config";
import { AppError } from "./errors";
import { parseStored } from "./keyspace";
import type { Hash } from "./log";
import type { Decision, Snapshot } from "./batch";
import { writeMany } from "./bulk-write";
import { DurablePosition } from "./durability";
import { GroupCommit } from "./group-commit";
import { ServiceConnections } from "./redis";

export { CONFLICT_BACKOFF } from "./group-commit";
/** The shapes of a transaction's pure decision (batch.ts), for the services that write one. */
export type { Decision, Snapshot };

/** How an entity maps to its fields. */
export type Codec<T> = { encode: (value: T) => Hash; decode: (hash: Hash) => T };

export class Store {
  /** Shared, auto-pipelined: for plain reads and bookkeeping, never for WATCH. */
  readonly client: Redis;
  private readonly durable: DurablePosition;
  private readonly commits: GroupCommit;

  private constructor(
    readonly service: ServiceName,
    private readonly connections: ServiceConnections,
  ) {
    this.client = connections.client;
    this.durable = new DurablePosition(connections.subscriber, connections.client, () => connections.losses);
    connections.onLoss(() => this.durable.connectionLost());
    this.commits = new GroupCommit(service, connections, this.durable);
  }

  /** A store whose connections are ready. */
  static async open(config: ServiceConfig): Promise<Store> {
    const store = Store.connecting(config);
    await store.connected();
    return store;
  }

  /** A store whose connections are still being made: commands fail (503) until `connected()`. */
  static connecting(config: ServiceConfig): Store {
    return new Store(
      config.service,
      new ServiceConnections(config.redis.host, config.redis.port, config.redisPoolSize),
    );
  }

  /** Resolves once every connection to Redis is ready (Redis may still be replaying its log). */
  connected(): Promise<void> {
    return this.connections.ready();
  }

  async read(key: string): Promise<Hash | null> {
    return parseStored(await this.client.get(key));
  }

  /**
   * Reads a key whose state an answer is about to repeat, though another request committed it (maybe
   * in a process that died before answering): resolves once the change that wrote it is durable.
   */
  async readDurable(key: string): Promise<Hash | null> {
    const hash = await this.read(key);
    await this.untilCommittedDurable();
    return hash;
  }

  /**
   * Resolves once every change committed before the call is in the log: for an earlier outcome
   * returned again, which may rest on a change not yet durable.
   */
  untilCommittedDurable(): Promise<void> {
    return this.durable.untilCommittedDurable();
  }

  async healthy(): Promise<boolean> {
    try {
      return (await this.client.ping()) === "PONG";
    } catch {
      return false;
    }
  }

  /**
   * Runs `decide` on a consistent snapshot of `watched` and commits what it returns, retrying on
   * conflicts until TIMING.transactionBudgetMs. `decide` must be pure: it may run several times.
   * Resolves once the batch holding this transaction has committed and its log lines are durable.
   */
  transact<R>(op: string, watched: readonly string[], decide: (snapshot: Snapshot) => Decision<R>): Promise<R> {
    return this.commits.transact({ op, watched, decide }) as Promise<R>;
  }

  /**
   * The common single-entity change: read one entity, let `change` compute the entity's next state or
   * refuse (an AppError, thrown after the transaction), write it back.
   */
  async change<T>(op: string, key: string, codec: Codec<T>, change: (current: T | null) => T | AppError): Promise<T> {
    const result = await this.transact<T | AppError>(op, [key], (snapshot) => {
      const hash = snapshot.get(key);
      const next = change(hash ? codec.decode(hash) : null);
      return next instanceof AppError ? { result: next } : { result: next, writes: { [key]: codec.encode(next) } };
    });
    if (result instanceof AppError) throw result;
    return result;
  }

  /** Writes of many whole keys (batch_init), in chunks: see bulk-write.ts. */
  writeMany(op: string, entries: ReadonlyArray<readonly [string, Hash]>): Promise<void> {
    return writeMany(this.service, this.connections, this.durable, op, entries);
  }

  async close(): Promise<void> {
    this.durable.close();
    await this.connections.close();
  }
}
