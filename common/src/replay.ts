/**
 * Rebuilding a Redis from its service log. Each log line holds the absolute state of the keys it
 * wrote and its sequence number, and every stored entity remembers the number that last wrote it (`v`).
 * So the rule is one comparison: a key takes a line's state exactly when the line is newer than what
 * the key holds. Replaying any part of the log, twice, or out of order, gives the same result.
 * A state that carries an expiry (a saga step's record, retention.ts) is replayed only while it has
 * not passed, and expires in Redis when it says.
 */
import type { Redis } from "ioredis";
import type { ServiceName } from "./config";
import { addIndexUpdates, indexUpdates, keys, parseStored, storedValue } from "./keyspace";
import { parseRecord, VERSION_FIELD, type Hash, type LogRecord } from "./log";
import { expiresAt, isExpired } from "./retention";

export type LatestState = { seq: number; hash: Hash };

/** Keys' newest states among the records (pure). */
export function foldLatest(
  records: Iterable<LogRecord>,
  into = new Map<string, LatestState>(),
): Map<string, LatestState> {
  for (const record of records) {
    for (const [key, hash] of Object.entries(record.writes)) {
      const known = into.get(key);
      if (!known || known.seq < record.seq) into.set(key, { seq: record.seq, hash });
    }
  }
  return into;
}

/** Whether a key whose stored version is `stored` (null: no such key) must take a line numbered `seq`. */
export function isNewer(seq: number, stored: number | null): boolean {
  return stored === null || stored < seq;
}

/** Splits a log's text into records, skipping torn or foreign lines; returns where the last whole line ends. */
export function parseLog(text: string): { records: LogRecord[]; consumed: number; skipped: number } {
  const end = text.lastIndexOf("\n") + 1;
  const records: LogRecord[] = [];
  let skipped = 0;
  for (const line of text.slice(0, end).split("\n")) {
    if (line === "") continue;
    const record = parseRecord(line);
    if (record) records.push(record);
    else skipped++;
  }
  return { records, consumed: end, skipped };
}

/** Keys per round trip while replaying. */
const REPLAY_CHUNK = 5_000;

export type ReplayStats = { keysInLog: number; keysApplied: number; maxSeq: number };

/**
 * Applies the newest state of every key to `redis` where Redis holds an older one (or none). Run
 * while no client can reach Redis (recover.ts), so a pipeline suffices; `empty` (Redis holds no key
 * at all) skips reading the stored versions.
 */
export async function applyLatest(
  redis: Redis,
  service: ServiceName,
  latest: Map<string, LatestState>,
  empty = false,
  now = Date.now(),
): Promise<ReplayStats> {
  const entries = [...latest.entries()];
  let applied = 0;
  let maxSeq = 0;
  for (let start = 0; start < entries.length; start += REPLAY_CHUNK) {
    const chunk = entries.slice(start, start + REPLAY_CHUNK);
    for (const [, { seq }] of chunk) maxSeq = Math.max(maxSeq, seq);
    // A state whose expiry has passed is not brought back (retention.ts).
    const live = chunk.filter(([, { hash }]) => !isExpired(hash, now));
    if (live.length === 0) continue;
    // MGET answers nil for a key of another type too (a hash of an older layout): it is replaced.
    const stored = empty ? undefined : await redis.mget(...live.map(([key]) => key));
    const newer = live.filter(([, { seq }], i) => {
      const version = parseStored(stored?.[i])?.[VERSION_FIELD];
      return isNewer(seq, version === undefined ? null : Number(version));
    });
    if (newer.length === 0) continue;
    applied += newer.length;
    // The stored value is replaced whole, as the line holds the key's whole state, and expires when it says.
    const write = redis
      .pipeline()
      .mset(...newer.flatMap(([key, { seq, hash }]) => [key, storedValue(JSON.stringify(hash), seq)]));
    for (const [key, { hash }] of newer) {
      const expiry = expiresAt(hash);
      if (expiry !== undefined) write.pexpireat(key, expiry);
    }
    addIndexUpdates(
      write,
      indexUpdates(
        service,
        newer.map(([key, { hash }]) => [key, hash] as const),
      ),
    );
    await write.exec();
  }
  // The allocation counter must never hand out a number the log already holds.
  const current = Number((await redis.get(keys.seq)) ?? 0);
  if (maxSeq > current) await redis.set(keys.seq, String(maxSeq));
  return { keysInLog: entries.length, keysApplied: applied, maxSeq };
}
