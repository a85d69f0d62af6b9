/**
 * The whole content of a Redis, as plain data a test can compare with toEqual — but the log stream
 * and its durable position: lines on their way to the log file, which the log writer trims on its own
 * shortly after each change, so a before/after comparison would catch a previous change still draining.
 */
import type { Redis } from "ioredis";
import { keys } from "../../src/keyspace";

export type RedisState = Record<string, { type: string; value: unknown }>;

export async function redisState(redis: Redis): Promise<RedisState> {
  const all: RedisState = {};
  let cursor = "0";
  do {
    const [next, found] = await redis.scan(cursor, "COUNT", 1000);
    cursor = next;
    for (const key of found) {
      if (key === keys.logStream || key === keys.durableLog) continue;
      const type = await redis.type(key);
      let value: unknown;
      if (type === "hash") value = await redis.hgetall(key);
      else if (type === "set") value = (await redis.smembers(key)).sort();
      else if (type === "string") value = await redis.get(key);
      else value = `<${type}>`;
      all[key] = { type, value };
    }
  } while (cursor !== "0");
  return all;
}

/** The state without the given keys (e.g. `meta:seq`, which a refused transaction still advances). */
export function without(state: RedisState, ...keys: string[]): RedisState {
  return Object.fromEntries(Object.entries(state).filter(([key]) => !keys.includes(key)));
}
