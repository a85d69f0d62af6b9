/**
 * The group-commit loop of one process (the pure part, planning a batch, is batch.ts). While one
 * batch is in flight the next one queues; the next batch WATCHes all its keys, reads them once, runs
 * each decision in order over the earlier ones' writes, and commits them all in one MULTI/EXEC with
 * their log lines, which go into the stream `log:stream` in the same MULTI.
 *
 * Crash safety of one change, step by step:
 *  1. WATCH + read + INCRBY meta:seq: nothing written yet (a burnt sequence number is harmless).
 *  2. EXEC writes the new states AND the change's lines (XADD), atomically, so Redis holds both or
 *     neither, also after losing a suffix of its AOF. If the process dies before EXEC, nothing
 *     happened; if EXEC's reply is lost, the outcome is unknown and reported as an error (a saga
 *     retries idempotently; a public caller got no answer).
 *  3. The service's log writer appends the stream to the log in commit order and publishes how far
 *     the log is durable; the process waits for that (durability.ts). If the process dies meanwhile,
 *     the writer appends the line all the same: nobody else has to.
 *  4. Only then does the caller answer. If a connection was lost between the batch's WATCH and the
 *     durable position reaching its entry, Redis may have died and lost the change with its line: the
 *     outcome is reported unknown, as in 2.
 */
import type { Redis } from "ioredis";
import { backoffMs, type Backoff } from "./backoff";
import { TIMING } from "./timing";
import { AppError } from "./errors";
import { crashPoint, faultsArmed } from "./faults";
import { addIndexUpdates, indexUpdates, keys, parseStored, storedValue } from "./keyspace";
import { expiresAt } from "./retention";
import { metrics } from "./metrics";
import { addTotals, totalsDelta } from "./totals";
import type { Hash } from "./log";
import { planBatch, watchedKeys, type BatchEntry, type BatchPlan, type BatchWrite } from "./batch";
import type { DurablePosition } from "./durability";
import { throwOnReplyError, type ServiceConnections } from "./redis";
import type { ServiceName } from "./config";

/**
 * Redis 7.0 checks each WATCHed key against every key the connection already watches, so WATCH
 * costs grow with the square of the keys, and one large batch would stall its Redis for every
 * service process (docs/benchmarks.md#redis-commands-and-chunk-sizes). Batches and bulk chunks stay
 * below this many keys.
 */
export const MAX_WATCHED_KEYS = 128;
/** Backoff after a WATCH conflict: jittered, doubling from 1 ms up to 50 ms. */
export const CONFLICT_BACKOFF: Backoff = { firstMs: 1, capMs: 50, jitter: true };

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

/** A pipeline or MULTI to queue commands on. */
export type Queue = ReturnType<Redis["multi"]> | ReturnType<Redis["pipeline"]>;

/**
 * One MSET for all the writes (a key written twice keeps its last state), the index changes they
 * imply, and the expiry of each state that carries one (retention.ts): in the same MULTI, as MSET
 * drops a key's expiry.
 */
export function addWrites(service: ServiceName, tx: Queue, writes: readonly BatchWrite[]): void {
  const values: string[] = [];
  for (const { key, json, seq } of writes) values.push(key, storedValue(json, seq));
  tx.mset(...values);
  for (const { key, hash } of writes) {
    const expiry = expiresAt(hash);
    if (expiry !== undefined) tx.pexpireat(key, expiry);
  }
  addIndexUpdates(
    tx,
    indexUpdates(
      service,
      writes.map(({ key, hash }) => [key, hash] as const),
    ),
  );
}

/** The change's lines into the log stream, in the commit's MULTI: XADD answers the entry's id. */
export function addLines(tx: Queue, lines: string): void {
  tx.xadd(keys.logStream, "*", "lines", lines);
}

export class GroupCommit {
  private waiting: Waiting[] = [];
  private batching = false;

  constructor(
    private readonly service: ServiceName,
    private readonly connections: ServiceConnections,
    private readonly durable: DurablePosition,
  ) {}

  /** Queues a transaction for the next batch; resolves once its batch committed and its lines are durable. */
  transact(entry: BatchEntry): Promise<unknown> {
    return new Promise((resolve, reject) => {
      this.waiting.push({ ...entry, resolve, reject, deadline: Date.now() + TIMING.transactionBudgetMs });
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
    const conn = await this.connections.pool.acquire();
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
        if (read.losses !== this.connections.losses) {
          // A connection was lost since this batch's WATCH was sent: it may be gone with it.
          batch = this.dropExpired(batch);
          if (batch.length > 0) read = await this.readPhase(conn, batch);
          continue;
        }
        const plan = planBatch(batch, read.snapshot, read.firstSeq, new Date().toISOString());
        if (plan.writes.length === 0) {
          void this.finishBatch(batch, plan, null, read.losses);
          await takeAndRead();
          continue;
        }
        const round = conn.pipeline();
        queueMulti(round);
        addWrites(this.service, round, plan.writes);
        addTotals(
          round,
          totalsDelta(this.service, plan.writes, read.snapshot, (seq) => batch[seq - read.firstSeq]!.op),
        );
        // Its reply's place among EXEC's replies: MULTI itself, the pipeline's first command, has none.
        const entryAt = round.length - 1;
        addLines(round, linesOf(plan));
        queueExec(round);
        const execAt = round.length - 1;
        next = this.takeBatch();
        const nextWatched = next.length > 0 ? this.addReads(round, next) : [];
        const lossesAtCommit = read.losses;
        metrics.redisRoundTrips.inc();
        const replies = await round.exec();
        const [execError, execReply] = replies?.[execAt] ?? [new Error("no reply to EXEC"), undefined];
        // Not a conflict: the connection failed or Redis refused the EXEC. Whether it committed is
        // unknown, so the batch is not retried (a retry could apply a change twice): see the catch.
        if (execError) throw execError;
        /** EXEC's reply: null when a watched key changed, else the replies of the MULTI's commands. */
        const committed = execReply as unknown[] | null;
        if (!committed) {
          // A watched key changed under this batch: retry it, ahead of the one read behind it.
          metrics.txConflicts.inc();
          this.waiting.unshift(...next);
          next = [];
          await Bun.sleep(backoffMs(attempt++, CONFLICT_BACKOFF));
          batch = this.dropExpired(batch);
          if (batch.length > 0) read = await this.readPhase(conn, batch);
          continue;
        }
        metrics.txBatchSize.observe(batch.length);
        void this.finishBatch(batch, plan, committed[entryAt] as string, lossesAtCommit);
        attempt = 0;
        batch = next;
        next = [];
        if (batch.length > 0)
          read = parseReads(throwOnReplyError(replies!).slice(execAt + 1), nextWatched, batch.length, lossesAtCommit);
        else await takeAndRead();
      }
    } catch (err) {
      // Redis failed us: a batch whose EXEC was sent has an unknown outcome, and its callers are told so.
      for (const tx of [...batch, ...next]) tx.reject(err);
    } finally {
      this.connections.pool.release(conn);
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
      tx.reject(
        new AppError(
          503,
          "transaction_contention",
          `could not commit ${tx.op} within ${TIMING.transactionBudgetMs} ms of conflicts`,
        ),
      );
      return false;
    });
  }

  /**
   * UNWATCH (a connection is reused), WATCH and read the batch's keys, then take its sequence numbers.
   * Returns the keys read, in the order parseReads expects them.
   */
  private addReads(round: ReturnType<Redis["pipeline"]>, batch: readonly Waiting[]): string[] {
    const watched = watchedKeys(batch);
    round
      .unwatch()
      .watch(...watched)
      .mget(...watched);
    // Sequence numbers are taken after the reads: a change that commits after another on the same
    // key has read it, so it holds a higher number, and replay by number is replay in commit order.
    round.incrby(keys.seq, batch.length);
    return watched;
  }

  private async readPhase(conn: Redis, batch: readonly Waiting[]): Promise<BatchRead> {
    const losses = this.connections.losses;
    const round = conn.pipeline();
    const watched = this.addReads(round, batch);
    metrics.redisRoundTrips.inc();
    return parseReads(throwOnReplyError(await round.exec()), watched, batch.length, losses);
  }

  /**
   * Waits until the log holds the batch's stream entry (`entry`, null if it wrote nothing), then
   * answers its transactions. A change that read another's result committed after it, so its entry
   * comes later in the stream, and the writer appends the stream in order: the change it rests on is
   * durable by then too, whichever process committed it, or died after committing it.
   */
  private async finishBatch(
    batch: Waiting[],
    plan: BatchPlan,
    entry: string | null,
    lossesAtCommit: number,
  ): Promise<void> {
    try {
      if (entry !== null) {
        if (faultsArmed()) for (const tx of batch) crashPoint(`${tx.op}.committed_not_logged`);
        const committedAt = performance.now();
        await this.durable.until(entry, lossesAtCommit);
        metrics.logDurableWait.observe((performance.now() - committedAt) / 1000);
        if (faultsArmed()) for (const tx of batch) crashPoint(`${tx.op}.logged_not_answered`);
      }
    } catch (err) {
      for (const tx of batch) tx.reject(err);
      return;
    }
    batch.forEach((tx, i) => {
      const outcome = plan.outcomes[i]!;
      if (outcome.ok) tx.resolve(outcome.result);
      else tx.reject(outcome.error);
    });
  }
}

/** The batch's log lines, in the order of its transactions. */
function linesOf(plan: BatchPlan): string {
  let lines = "";
  for (const outcome of plan.outcomes) if (outcome.ok && outcome.line) lines += outcome.line;
  return lines;
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

/** A batch's reads, and the connections lost when their WATCH was sent. */
type BatchRead = { snapshot: Map<string, Hash | null>; firstSeq: number; losses: number };

/** The replies of addReads (UNWATCH, WATCH, MGET, INCRBY) for a batch of `count` transactions. */
function parseReads(replies: unknown[], watched: readonly string[], count: number, losses: number): BatchRead {
  const values = replies[2] as Array<string | null>;
  const snapshot = new Map<string, Hash | null>();
  for (const [i, key] of watched.entries()) snapshot.set(key, parseStored(values[i]));
  return { snapshot, firstSeq: Number(replies[3]) - count + 1, losses };
}
