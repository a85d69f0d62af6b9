/**
 * What a process killed between a commit's EXEC and its answer leaves behind: the key at the
 * change's sequence number, and the change's line in the log stream, from the same MULTI.
 */
import type { Redis } from "ioredis";
import { keys, storedValue } from "../../src/keyspace";
import { formatRecord, type Hash } from "../../src/log";

/** Writes that state for one key; `seq` is taken from the service's counter unless given. Returns it. */
export async function committedNotLogged(
  client: Redis,
  key: string,
  hash: Hash,
  op: string,
  seq?: number,
): Promise<number> {
  const number = seq ?? (await client.incr(keys.seq));
  const line = formatRecord({ seq: number, at: new Date().toISOString(), op, writes: { [key]: hash } });
  await client
    .multi()
    .set(key, storedValue(JSON.stringify(hash), number))
    .xadd(keys.logStream, "*", "lines", line)
    .exec();
  return number;
}

/** How many of a store's changes wait for the log to take their lines (a peek inside, for tests that hold the writer). */
export function waitingForTheLog(store: object): number {
  return (store as unknown as { durable: { waiting: unknown[] } }).durable.waiting.length;
}
