/**
 * What a process killed between a commit's EXEC and its log line leaves behind: the key at the
 * change's sequence number, and the change's line waiting in `log:pending`.
 */
import type { Redis } from "ioredis";
import { keys, storedValue } from "../../src/keyspace";
import { formatRecord, type Hash } from "../../src/log";

/** Writes that state for one key; `seq` is taken from the service's counter unless given. Returns it. */
export async function committedNotLogged(client: Redis, key: string, hash: Hash, op: string, seq?: number): Promise<number> {
  const number = seq ?? (await client.incr(keys.seq));
  await client.set(key, storedValue(JSON.stringify(hash), number));
  await client.hset(keys.pendingLog, String(number), formatRecord({ seq: number, at: new Date().toISOString(), op, writes: { [key]: hash } }));
  return number;
}
