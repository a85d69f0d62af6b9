/**
 * The one way a service changes its Redis: an optimistic transaction (WATCH the keys, read them,
 * decide with a pure function, MULTI/EXEC the writes, retry on conflict), followed by a durable log
 * append before the caller may answer.
 *
 * Transactions are group-committed: see batch.ts. Crash safety of one change, step by step:
 *  1. WATCH + read + INCRBY meta:seq: nothing written yet (a burnt sequence number is harmless).
 *  2. EXEC writes the new states AND the log line into `log:pending`, atomically. If the process dies
 *     before EXEC, nothing happened; if EXEC's reply is lost, the outcome is unknown and reported as
 *     an error (the saga retries idempotently; a public caller got no answer).
 *  3. The line is appended to the log, durably (O_DSYNC, group commit). If the process dies before
 *     that, the line waits in `log:pending`: any process of the service appends lines older than
 *     TIMING.orphanLogLineAgeMs (orphan sweep), recovery appends them before replaying, and a change
 *     that reads the change meanwhile logs its line ahead of its own (unloggedPredecessors).
 *  4. Only then does the caller answer, and the pending entry is dropped. But if a connection to
 *     Redis was lost between the batch's WATCH and the start of the append, Redis may have died with
 *     the change unsaved and been rebuilt from the log already: the line is not written, and the
 *     outcome is reported unknown, as in 2 (see connectionLosses). Once its write has begun, a
 *     recovery reading the log sees the line.
 */
import type { Redis } from "ioredis";
import { setPriority } from "node:os";
import { join } from "node:path";
import { TIMING, type ServiceConfig, type ServiceName } from "./config";
import { AppError } from "./errors";
import { crashPoint, faultsArmed } from "./faults";
import { addIndexUpdates, indexUpdates, keys, parseStored, storedValue } from "./keyspace";
import { formatLine, logPath, LogWriter, parseRecord, versionOf, type Hash, type Writes } from "./log";
import { planBatch, watchedKeys, type BatchEntry, type BatchPlan, type BatchWrite, type EntryOutcome } from "./batch";
import { connect, ConnectionPool } from "./redis";
import { metrics } from "./metrics";
import { addTotals, measured, totalsDelta } from "./totals";

/** What a transaction read: each watched key's fields, or null where the key does not exist. */
export type Snapshot = ReadonlyMap<string, Hash | null>;

/** How an entity maps to its fields. */
export type Codec<T> = { encode: (value: T) => Hash; decode: (hash: Hash) => T };

/** What a pure decision returns: the answer, and the absolute new state of each key to write (if any). */
export type Decision<R> = { result: R; writes?: Writes };

/**
 * Redis 7.0 checks each WATCHed key against every key the connection already watches, so WATCH
 * costs grow with the square of the keys: 2 000 keys took 79 ms of Redis time, 128 keys a fraction
 * of a millisecond. Batches and bulk chunks stay below this many keys.
 */
const MAX_WATCHED_KEYS = 128;
/** With no batch to carry them, durable lines' `log:pending` entries are dropped after this long. */
const PENDING_DROP_IDLE_MS = 50;
/**
 * Keys per bulk chunk. Redis runs the chunks one after another, and a WATCH of 256 keys took it
 * 0.93 ms; chunks of 128 keys were as fast or a little faster for orders' batch_init (1.3-1.8 s
 * against 1.4-1.9 s over six runs), chunks of 64 slower (1.9-2.3 s).
 */
const BULK_CHUNK_KEYS = 128;
/** Bulk chunks (batch_init) committed at once, each on its own pooled connection (see REDIS_POOL_SIZE). */
const BULK_PARALLEL = 8;
/** Scheduling priority of the compaction child: 0 is the services', 19 the lowest. */
const COMPACTION_NICENESS = 10;
/** Backoff after a WATCH conflict: jittered, doubling from the first up to the cap. */
const CONFLICT_BACKOFF_FIRST_MS = 1;
const CONFLICT_BACKOFF_CAP_MS = 50;

export function conflictBackoffMs(attempt: number, random = Math.random()): number {
  const ceiling = Math.min(CONFLICT_BACKOFF_CAP_MS, CONFLICT_BACKOFF_FIRST_MS * 2 ** attempt);
  return ceiling * (0.5 + random / 2);
}

/** A transaction waiting for its batch. */
type Waiting = BatchEntry & { resolve: (value: unknown) => void; reject: (error: unknown) => void; deadline: number };

/** How many of the waiting transactions form the next batch: at least one, and few enough keys to WATCH. */
function batchLength(waiting: readonly Waiting[]): number {
  let keysInBatch = 0;
  for (let n = 0; n < waiting.length; n++) {
    keysInBatch += waiting[n]!.watched.length;
    if (keysInBatch > MAX_WATCHED_KEYS) return Math.max(1, n);
  }
  return waiting.length;
}

export class Store {
  private waiting: Waiting[] = [];
  private batching = false;
  /** Sequence numbers whose lines are durable in the log: their `log:pending` entries can go. */
  private pendingDone: string[] = [];
  /**
   * This process's committed changes whose `log:pending` entries may still exist. A change of ours
   * that reads one of them needs no look-up (see unloggedPredecessors): our log gets their lines
   * first, in commit order, and if we die before, it gets neither.
   */
  private readonly ownPending = new Set<number>();
  private dropTimer: ReturnType<typeof setTimeout> | undefined;
  private readonly timers: Array<ReturnType<typeof setInterval>> = [];
  /**
   * Connections to this service's Redis lost so far. A change whose batch was read before a loss is
   * not logged by this process once the loss is seen, nor answered (logDurably): Redis may have died
   * with it unsaved and recovery rebuilt it from the log already, so a line arriving now could be
   * replayed later into a Redis that never held its change. And a batch read before a loss is read
   * again before it commits: its connection may have been replaced, and its WATCH with it.
   */
  private connectionLosses = 0;

  private constructor(
    readonly service: ServiceName,
    /** Shared, auto-pipelined: for plain reads and bookkeeping, never for WATCH. */
    readonly client: Redis,
    private readonly pool: ConnectionPool,
    private readonly log: LogWriter,
  ) {
    for (const conn of [client, ...pool.connections]) {
      conn.on("close", () => {
        this.connectionLosses++;
        // Our lines not yet written may now be refused (logDurably): a change that reads one must
        // look it up and log it ahead of its own, like another process's.
        this.ownPending.clear();
      });
    }
  }

  /** A store whose connections are ready. */
  static async open(config: ServiceConfig): Promise<Store> {
    const store = await Store.connecting(config);
    await store.connected();
    return store;
  }

  /** A store whose connections are still being made: commands fail (503) until `connected()`. */
  static async connecting(config: ServiceConfig): Promise<Store> {
    const client = connect(config.redis.host, config.redis.port, { enableAutoPipelining: true });
    const pool = new ConnectionPool(config.redis.host, config.redis.port, config.redisPoolSize);
    const log = await LogWriter.open(logPath(config.logDir, config.service));
    return new Store(config.service, client, pool, log);
  }

  /** Resolves once every connection to Redis is ready (Redis may still be replaying its log). */
  async connected(): Promise<void> {
    await Promise.all([this.client, ...this.pool.connections].map(untilReady));
  }

  /**
   * Background upkeep of the log: appends the lines other processes committed but never logged, and
   * compacts the log once it outgrows `compactBytes` (in a child process, so no request waits on it).
   */
  startLogUpkeep(logDir: string, compactBytes: number, instanceId: string): void {
    const sweep = () => this.appendOrphanedLines().catch(() => {});
    sweep();
    this.timers.push(setInterval(sweep, TIMING.orphanLogSweepIntervalMs));
    this.timers.push(setInterval(() => this.compactIfLarge(logDir, compactBytes, instanceId).catch(() => {}), TIMING.compactionCheckIntervalMs));
  }

  private async compactIfLarge(logDir: string, compactBytes: number, instanceId: string): Promise<void> {
    const size = Bun.file(logPath(logDir, this.service)).size;
    if (size < compactBytes) return;
    // A token of this compaction's own: should the lock expire under it and another process take it,
    // the release below leaves the other's lock alone.
    const token = `${instanceId}:${crypto.randomUUID()}`;
    const locked = await this.client.set(keys.compactionLock, token, "PX", TIMING.compactionLockMs, "NX");
    if (locked !== "OK") return;
    try {
      const child = Bun.spawn(["bun", join(import.meta.dir, "compact.ts"), this.service, logDir], { stdout: "inherit", stderr: "inherit" });
      // Upkeep gives way to requests: at the services' priority, folding the order log of 150 000
      // orders took a core for seconds and cut checkout throughput by up to half meanwhile. A lower
      // priority makes it take longer on a busy machine instead (the lock outlasts it).
      try {
        setPriority(child.pid, COMPACTION_NICENESS);
      } catch {
        // Already exited, or not allowed: it runs at the services' priority, as before.
      }
      await child.exited;
    } finally {
      await this.releaseCompactionLock(token).catch(() => {});
    }
  }

  /** Deletes the compaction lock if it still holds `token`, in an optimistic transaction. */
  private async releaseCompactionLock(token: string): Promise<void> {
    const conn = await this.pool.acquire();
    try {
      // A pooled connection may come back still watching a batch's keys: UNWATCH first, as they all do.
      const [, , holder] = throwOnReplyError(await conn.pipeline().unwatch().watch(keys.compactionLock).get(keys.compactionLock).exec());
      if (holder === token) await conn.multi().del(keys.compactionLock).exec();
      else await conn.unwatch();
    } finally {
      this.pool.release(conn);
    }
  }

  async read(key: string): Promise<Hash | null> {
    return parseStored(await this.client.get(key));
  }

  /**
   * Reads a key whose state an answer is about to repeat, though another request committed it (maybe
   * in a process that died before logging it): the change that wrote it, and the pending lines before
   * it, are made durable first (ensureLogged).
   */
  async readLogged(key: string): Promise<Hash | null> {
    const hash = await this.read(key);
    await this.ensureLogged(versionOf(hash));
    return hash;
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
   * Transactions are group-committed (batch.ts): this resolves once the batch holding this one has
   * committed and its log lines are durable.
   */
  transact<R>(op: string, watched: readonly string[], decide: (snapshot: Snapshot) => Decision<R>): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      this.waiting.push({
        op,
        watched,
        decide,
        resolve: resolve as (value: unknown) => void,
        reject,
        deadline: Date.now() + TIMING.transactionBudgetMs,
      });
      if (!this.batching) {
        this.batching = true;
        // Started after the current turn of the event loop, so that every request this turn
        // delivered joins the first batch instead of waiting for the next one.
        setImmediate(() => void this.commitBatches());
      }
    });
  }

  /**
   * One batch in flight at a time, on one connection; whatever queues meanwhile forms the next batch.
   * Under load, the next batch's WATCH and reads ride in the same round trip as this batch's
   * MULTI/EXEC: Redis runs them after the EXEC, so they see what it wrote, and a batch costs one
   * round trip instead of two.
   */
  private async commitBatches(): Promise<void> {
    const conn = await this.pool.acquire();
    let batch: Waiting[] = [];
    let next: Waiting[] = [];
    let read: BatchRead = { snapshot: new Map(), firstSeq: 0, losses: 0 };
    /** The next batch from the queue, and its reads in a round trip of their own. */
    const takeAndRead = async () => {
      batch = this.takeBatch();
      if (batch.length > 0) read = await this.readPhase(conn, batch);
    };
    try {
      await takeAndRead();
      for (let attempt = 0; batch.length > 0; ) {
        if (read.losses !== this.connectionLosses) {
          // A connection was lost since this batch's WATCH was sent: it may be gone with it.
          batch = this.dropExpired(batch);
          if (batch.length > 0) read = await this.readPhase(conn, batch);
          continue;
        }
        const plan = planBatch(batch, read.snapshot, read.firstSeq, new Date().toISOString());
        if (plan.writes.length === 0) {
          void this.finishBatch(batch, plan, read.losses);
          await takeAndRead();
          continue;
        }
        const round = conn.pipeline();
        queueMulti(round);
        this.addWrites(round, plan.writes);
        addTotals(round, totalsDelta(this.service, plan.writes, read.snapshot, (seq) => batch[seq - read.firstSeq]!.op));
        const pending: Record<string, string> = {};
        for (const outcome of plan.outcomes) if (outcome.ok && outcome.line) pending[String(outcome.seq)] = outcome.line;
        round.hset(keys.pendingLog, pending);
        // Pending entries of earlier, now durable, lines leave in the same MULTI: no extra round trip.
        const dropped = this.pendingDone;
        this.pendingDone = [];
        if (dropped.length > 0) round.hdel(keys.pendingLog, ...dropped);
        // Inside the MULTI, so it sees `log:pending` as of this commit (see unloggedPredecessors). Its
        // reply's place among EXEC's replies: MULTI itself, the pipeline's first command, has none.
        const foreign = this.foreignVersions(read.snapshot);
        const lookupAt = round.length - 1;
        if (foreign.length > 0) round.hmget(keys.pendingLog, ...foreign.map(String));
        queueExec(round);
        const execAt = round.length - 1;
        next = this.takeBatch();
        const nextWatched = next.length > 0 ? this.addReads(round, next) : [];
        const lossesAtCommit = read.losses;
        metrics.redisRoundTrips.inc();
        const replies = await round.exec().catch((err: unknown) => {
          this.pendingDone.push(...dropped);
          throw err;
        });
        const [execError, execReply] = replies?.[execAt] ?? [new Error("no reply to EXEC"), undefined];
        if (execError) {
          // Not a conflict: the connection failed or Redis refused the EXEC. Whether it committed is
          // unknown, so the batch is not retried (a retry could apply a change twice): see the catch.
          this.pendingDone.push(...dropped);
          throw execError;
        }
        /** EXEC's reply: null when a watched key changed, else the replies of the MULTI's commands. */
        const committed = execReply as unknown[] | null;
        if (!committed) {
          // A watched key changed under this batch: retry it, ahead of the one read behind it.
          metrics.txConflicts.inc();
          this.pendingDone.push(...dropped);
          this.waiting.unshift(...next);
          next = [];
          await Bun.sleep(conflictBackoffMs(attempt++));
          batch = this.dropExpired(batch);
          if (batch.length > 0) read = await this.readPhase(conn, batch);
          continue;
        }
        for (const seq of dropped) this.ownPending.delete(Number(seq));
        metrics.txBatchSize.observe(batch.length);
        const stillPending = foreign.length > 0 ? (committed[lookupAt] as Array<string | null>) : [];
        const preceding = stillPending.some((line) => line !== null) ? await this.unloggedPredecessors(conn, foreign, stillPending) : undefined;
        // Own only from here: if the look-up above failed, these lines are never queued by this process;
        // after a connection loss they may be refused (logDurably), so they are looked up like others'.
        if (this.connectionLosses === lossesAtCommit) {
          for (const outcome of plan.outcomes) if (outcome.ok && outcome.line) this.ownPending.add(outcome.seq);
        }
        void this.finishBatch(batch, plan, lossesAtCommit, preceding);
        attempt = 0;
        batch = next;
        next = [];
        if (batch.length > 0) read = parseReads(throwOnReplyError(replies!).slice(execAt + 1), nextWatched, batch.length, lossesAtCommit);
        else await takeAndRead();
      }
    } catch (err) {
      // Redis failed us: a batch whose EXEC was sent has an unknown outcome, and its callers are told so.
      for (const tx of [...batch, ...next]) tx.reject(err);
    } finally {
      this.pool.release(conn);
      this.batching = false;
      if (this.waiting.length > 0) {
        this.batching = true;
        setImmediate(() => void this.commitBatches());
      }
    }
  }

  private takeBatch(): Waiting[] {
    return this.dropExpired(this.waiting.splice(0, batchLength(this.waiting)));
  }

  private dropExpired(batch: Waiting[]): Waiting[] {
    const now = Date.now();
    return batch.filter((tx) => {
      if (tx.deadline >= now) return true;
      tx.reject(new AppError(503, "transaction_contention", `could not commit ${tx.op} within ${TIMING.transactionBudgetMs} ms of conflicts`));
      return false;
    });
  }

  /**
   * UNWATCH (a connection is reused), WATCH and read the batch's keys, then take its sequence numbers.
   * Returns the keys read, in the order parseReads expects them.
   */
  private addReads(round: ReturnType<Redis["pipeline"]>, batch: readonly Waiting[]): string[] {
    const watched = watchedKeys(batch);
    round.unwatch().watch(...watched).mget(...watched);
    // Sequence numbers are taken after the reads: a change that commits after another on the same
    // key has read it, so it holds a higher number, and replay by number is replay in commit order.
    round.incrby(keys.seq, batch.length);
    return watched;
  }

  private async readPhase(conn: Redis, batch: readonly Waiting[]): Promise<BatchRead> {
    const losses = this.connectionLosses;
    const round = conn.pipeline();
    const watched = this.addReads(round, batch);
    metrics.redisRoundTrips.inc();
    return parseReads(throwOnReplyError(await round.exec()), watched, batch.length, losses);
  }

  /** The versions (sequence numbers) of the keys a batch read, except this process's own pending ones. */
  private foreignVersions(snapshot: Snapshot): number[] {
    const versions = new Set<number>();
    for (const hash of snapshot.values()) {
      const seq = versionOf(hash);
      if (seq > 0 && !this.ownPending.has(seq)) versions.add(seq);
    }
    return [...versions];
  }

  /**
   * A batch read a change that another process committed but has not logged (its process may have
   * died between EXEC and the log). The batch's own lines hold that change's effect in the states
   * they write, so they must not reach the log without it: were Redis then to lose its data,
   * recovery would replay the effect without the change's record (a saga step's), and a retried step
   * would apply it again. So its line goes first, in the same write, and with it every pending line
   * numbered up to it: whatever that change read was committed before it, with a lower number, and
   * may be unlogged too. Extra lines are harmless (each is a committed change; replay is idempotent).
   * A change that was logged meanwhile has left `log:pending` and needs nothing.
   *
   * Exact numbers find single changes only: a batch_init chunk's entry sits under its first number.
   * Reading a key from an unlogged chunk is harmless, as batch_init writes whole states and keeps no
   * record that a retry would consult.
   */
  private async unloggedPredecessors(conn: Redis, foreign: readonly number[], stillPending: ReadonlyArray<string | null>): Promise<PendingLines> {
    const newest = Math.max(...foreign.filter((_, i) => stillPending[i] !== null));
    // On the batch's own connection, which just committed: the shared one may be reconnecting.
    return this.pendingUpTo(newest, conn);
  }

  /**
   * Every `log:pending` entry numbered up to `newest`, except this process's own, which are already
   * queued in its log. (The asking batch's own lines are numbered above `newest`: it took its numbers
   * after its reads.)
   */
  private async pendingUpTo(newest: number, conn: Redis = this.client): Promise<PendingLines> {
    const pending = Object.entries(await conn.hgetall(keys.pendingLog))
      .map(([seq, lines]) => [Number(seq), lines] as const)
      .filter(([seq]) => seq <= newest && !this.ownPending.has(seq))
      .sort(([a], [b]) => a - b);
    return { seqs: pending.map(([seq]) => seq), lines: pending.map(([, lines]) => lines).join("") };
  }

  /**
   * Appends the batch's lines, after `preceding` (other processes' unlogged changes it read) in the
   * same write, then answers its transactions. Called in commit order, and the lines are queued
   * before its first await, so this process's lines reach the log in commit order.
   */
  private async finishBatch(batch: Waiting[], plan: BatchPlan, lossesAtCommit: number, preceding?: PendingLines): Promise<void> {
    const logged = plan.outcomes.filter((o): o is Extract<EntryOutcome, { ok: true }> => o.ok && o.line !== null);
    try {
      if (logged.length > 0) {
        if (faultsArmed()) for (const tx of batch) crashPoint(`${tx.op}.committed_not_logged`);
        await this.logDurably(
          [...(preceding?.seqs ?? []), ...logged.map((o) => o.seq)],
          (preceding?.lines ?? "") + logged.map((o) => o.line).join(""),
          lossesAtCommit,
        );
        if (faultsArmed()) for (const tx of batch) crashPoint(`${tx.op}.logged_not_answered`);
      }
    } catch (err) {
      // Not in the log: a later change of ours that reads them must look them up like anyone else's.
      for (const o of logged) this.ownPending.delete(o.seq);
      for (const tx of batch) tx.reject(err);
      return;
    }
    batch.forEach((tx, i) => {
      const outcome = plan.outcomes[i]!;
      if (outcome.ok) tx.resolve(outcome.result);
      else tx.reject(outcome.error);
    });
  }

  /** One MSET for all the writes (a key written twice keeps its last state), and the index changes they imply. */
  private addWrites(tx: ReturnType<Redis["multi"]> | ReturnType<Redis["pipeline"]>, writes: readonly BatchWrite[]): void {
    const values: string[] = [];
    for (const { key, json, seq } of writes) values.push(key, storedValue(json, seq));
    tx.mset(...values);
    addIndexUpdates(tx, indexUpdates(this.service, writes.map(({ key, hash }) => [key, hash] as const)));
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

  /**
   * Writes of many whole keys (batch_init), in chunked MULTIs, each with its lines in `log:pending`
   * like any transaction. The chunk's keys are WATCHed from before their sequence numbers are taken,
   * so a change that slips in between makes the chunk retry with newer numbers: a key's live state
   * is always the one with the highest number, as replay assumes.
   */
  async writeMany(op: string, entries: ReadonlyArray<readonly [string, Hash]>): Promise<void> {
    let next = 0;
    const worker = async () => {
      while (next < entries.length) {
        const chunk = entries.slice(next, (next += BULK_CHUNK_KEYS));
        while (!(await this.writeChunk(op, chunk))) await Bun.sleep(conflictBackoffMs(0));
      }
    };
    await Promise.all(Array.from({ length: BULK_PARALLEL }, worker));
  }

  private async writeChunk(op: string, chunk: ReadonlyArray<readonly [string, Hash]>): Promise<boolean> {
    const conn = await this.pool.acquire();
    const seqs: number[] = [];
    let lines = "";
    // Counted from the WATCH, as for a batch (connectionLosses).
    const lossesAtCommit = this.connectionLosses;
    try {
      const chunkKeys = chunk.map(([key]) => key);
      const reading = conn.pipeline().unwatch().watch(...chunkKeys).incrby(keys.seq, chunk.length);
      // The states a chunk replaces, for the running totals (totals.ts); only where there are totals.
      if (measured(this.service)) reading.mget(...chunkKeys);
      const reserved = throwOnReplyError(await reading.exec());
      const before = new Map(chunkKeys.map((key, i) => [key, parseStored((reserved[3] as Array<string | null> | undefined)?.[i])] as const));
      const firstSeq = Number(reserved[2]) - chunk.length + 1;
      const at = new Date().toISOString();
      const tx = conn.multi();
      const writes = chunk.map(([key, hash], i) => ({ key, hash, seq: firstSeq + i, json: JSON.stringify(hash) }));
      this.addWrites(tx, writes);
      addTotals(tx, totalsDelta(this.service, writes, before, () => op));
      lines = writes.map((write) => formatLine(write.seq, at, op, [write])).join("");
      // One pending entry for the whole chunk (its lines, under its first number): half the Redis
      // work and AOF volume of an entry per line.
      seqs.push(firstSeq);
      tx.hset(keys.pendingLog, String(firstSeq), lines);
      const committed = await tx.exec();
      if (committed === null) return false;
      throwOnReplyError(committed);
      this.ownPending.add(firstSeq);
    } finally {
      this.pool.release(conn);
    }
    await this.logDurably(seqs, lines, lossesAtCommit);
    return true;
  }

  /**
   * Called when an operation's earlier outcome is returned again: if its line is still pending (its
   * process died between EXEC and the log), it is appended now, before the outcome is repeated.
   * `seq` 0 (see versionOf) names no change: nothing to do.
   */
  async ensureLogged(seq: number): Promise<void> {
    if (seq <= 0) return;
    const lossesAtRead = this.connectionLosses;
    const line = await this.client.hget(keys.pendingLog, String(seq));
    if (line === null) return;
    // After the pending lines it may have read, as for a batch (unloggedPredecessors). The line itself
    // goes even when it is this process's own: its first append may still be in flight.
    const before = await this.pendingUpTo(seq - 1);
    await this.logDurably([...before.seqs, seq], before.lines + line, lossesAtRead);
  }

  /**
   * Appends lines whose changes were committed to Redis, or read from it, when `connectionLosses` was
   * `lossesBefore`. If a connection has been lost since, they are not written and the caller does not
   * answer, as when EXEC's reply is lost (see connectionLosses). Their entries stay in `log:pending`
   * wherever Redis kept them: recovery appends them, or else the orphan sweep does.
   */
  private async logDurably(seqs: number[], lines: string, lossesBefore?: number): Promise<void> {
    const redisLost = () =>
      lossesBefore !== undefined && this.connectionLosses !== lossesBefore
        ? new AppError(503, "redis_unavailable", "the database went down before this change was logged; its outcome is unknown: retry")
        : undefined;
    await this.log.append(lines, redisLost);
    for (const seq of seqs) this.pendingDone.push(String(seq));
    // Usually the next batch's MULTI carries the HDEL; when no batch follows soon, it goes alone.
    this.dropTimer ??= setTimeout(() => this.dropPending(), PENDING_DROP_IDLE_MS);
  }

  /** One HDEL for all lines made durable since the last one; a lost HDEL only means a duplicate line later. */
  private dropPending(): void {
    if (this.dropTimer) clearTimeout(this.dropTimer);
    this.dropTimer = undefined;
    const done = this.pendingDone;
    this.pendingDone = [];
    if (done.length > 0) {
      this.client
        .hdel(keys.pendingLog, ...done)
        .then(() => done.forEach((seq) => this.ownPending.delete(Number(seq))))
        .catch(() => {});
    }
  }

  async appendOrphanedLines(now = Date.now()): Promise<number> {
    const lossesAtRead = this.connectionLosses;
    const pending = await this.client.hgetall(keys.pendingLog);
    const orphans = orphanedLines(pending, now, TIMING.orphanLogLineAgeMs);
    if (orphans.length === 0) return 0;
    await this.logDurably(
      orphans.map(([seq]) => Number(seq)),
      orphans.map(([, line]) => line).join(""),
      lossesAtRead,
    );
    return orphans.length;
  }

  async close(): Promise<void> {
    for (const timer of this.timers) clearInterval(timer);
    this.dropPending();
    await this.log.close();
    await this.pool.close();
    await this.client.quit().catch(() => this.client.disconnect());
  }
}

/**
 * Pending entries older than `maxAgeMs`: their process has had ample time to append them itself. An
 * entry holds one line, or a bulk chunk's lines (all of one time).
 */
export function orphanedLines(pending: Record<string, string>, now: number, maxAgeMs: number): Array<[string, string]> {
  return Object.entries(pending).filter(([, lines]) => {
    const record = parseRecord(lines.slice(0, lines.indexOf("\n") + 1));
    return record === null ? false : now - Date.parse(record.at) > maxAgeMs;
  });
}

/**
 * MULTI and EXEC queued inside a pipeline (ioredis supports it; its types do not show it): while a
 * MULTI is open, the pipeline's `exec` queues EXEC instead of sending the pipeline.
 */
function queueMulti(round: ReturnType<Redis["pipeline"]>): void {
  (round as unknown as { multi(): unknown }).multi();
}

function queueExec(round: ReturnType<Redis["pipeline"]>): void {
  void round.exec();
}

/** A batch's reads, and `connectionLosses` when their WATCH was sent. */
type BatchRead = { snapshot: Map<string, Hash | null>; firstSeq: number; losses: number };
/** `log:pending` entries to append: their numbers and their lines, in that order. */
type PendingLines = { seqs: number[]; lines: string };

/** The replies of addReads (UNWATCH, WATCH, MGET, INCRBY) for a batch of `count` transactions. */
function parseReads(replies: unknown[], watched: readonly string[], count: number, losses: number): BatchRead {
  const values = replies[2] as Array<string | null>;
  const snapshot = new Map<string, Hash | null>();
  watched.forEach((key, i) => snapshot.set(key, parseStored(values[i])));
  return { snapshot, firstSeq: Number(replies[3]) - count + 1, losses };
}

function untilReady(client: Redis): Promise<void> {
  if (client.status === "ready") return Promise.resolve();
  return new Promise((resolve) => client.once("ready", () => resolve()));
}

function throwOnReplyError(replies: Array<[Error | null, unknown]> | null): unknown[] {
  if (replies === null) throw new Error("pipeline returned no replies");
  return replies.map(([err, value]) => {
    if (err) throw err;
    return value;
  });
}
