/**
 * Writes of many whole keys (batch_init): chunked MULTIs, each with its lines in the log stream like
 * any transaction, several chunks at once, each on its own pooled connection.
 */
import { keys, parseStored } from "./keyspace";
import { addTotals, measured, totalsDelta } from "./totals";
import { formatLine, type Hash } from "./log";
import type { DurablePosition } from "./durability";
import { addLines, addWrites, conflictBackoffMs } from "./group-commit";
import { throwOnReplyError, type ServiceConnections } from "./redis";
import type { ServiceName } from "./config";

/**
 * Keys per bulk chunk: the group commit's bound on watched keys. Redis runs the chunks one after
 * another, so a chunk's WATCH must stay short; smaller chunks pay more round trips
 * (docs/benchmarks.md#redis-commands-and-chunk-sizes).
 */
const BULK_CHUNK_KEYS = 128;
/** Bulk chunks (batch_init) committed at once, each on its own pooled connection (see REDIS_POOL_SIZE). */
const BULK_PARALLEL = 8;

/**
 * The chunk's keys are WATCHed from before their sequence numbers are taken, so a change that slips
 * in between makes the chunk retry with newer numbers: a key's live state is always the one with the
 * highest number, as replay assumes. Resolves once every chunk is durable; not atomic as a whole.
 */
export async function writeMany(
  service: ServiceName,
  connections: ServiceConnections,
  durable: DurablePosition,
  op: string,
  entries: ReadonlyArray<readonly [string, Hash]>,
): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < entries.length) {
      const chunk = entries.slice(next, next + BULK_CHUNK_KEYS);
      next += BULK_CHUNK_KEYS;
      while (!(await writeChunk(service, connections, durable, op, chunk))) await Bun.sleep(conflictBackoffMs(0));
    }
  };
  await Promise.all(Array.from({ length: BULK_PARALLEL }, worker));
}

async function writeChunk(
  service: ServiceName,
  connections: ServiceConnections,
  durable: DurablePosition,
  op: string,
  chunk: ReadonlyArray<readonly [string, Hash]>,
): Promise<boolean> {
  const conn = await connections.pool.acquire();
  // Counted from the WATCH, as for a batch (group-commit.ts).
  const lossesAtWatch = connections.losses;
  let entry: string;
  try {
    const chunkKeys = chunk.map(([key]) => key);
    const reading = conn
      .pipeline()
      .unwatch()
      .watch(...chunkKeys)
      .incrby(keys.seq, chunk.length);
    // The states a chunk replaces, for the running totals (totals.ts); only where there are totals.
    if (measured(service)) reading.mget(...chunkKeys);
    const reserved = throwOnReplyError(await reading.exec());
    const before = new Map(
      chunkKeys.map((key, i) => [key, parseStored((reserved[3] as Array<string | null> | undefined)?.[i])] as const),
    );
    const firstSeq = Number(reserved[2]) - chunk.length + 1;
    const at = new Date().toISOString();
    const tx = conn.multi();
    const writes = chunk.map(([key, hash], i) => ({ key, hash, seq: firstSeq + i, json: JSON.stringify(hash) }));
    addWrites(service, tx, writes);
    addTotals(
      tx,
      totalsDelta(service, writes, before, () => op),
    );
    // One stream entry for the whole chunk.
    addLines(tx, writes.map((write) => formatLine(write.seq, at, op, [write])).join(""));
    const committed = await tx.exec();
    if (committed === null) return false;
    entry = throwOnReplyError(committed).at(-1) as string;
  } finally {
    connections.pool.release(conn);
  }
  await durable.until(entry, lossesAtWatch);
  return true;
}
