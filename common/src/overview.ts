/**
 * What the dashboard reads from each service's Redis, off the checkout path: how often each of the
 * service's processes has started, and the conservation meter's running totals (totals.ts). Every
 * service answers it on `GET /internal/overview` (internal secret required, service.ts); the order
 * service reads its own Redis and asks stock and payment (order/src/stats.ts).
 */
import type { Redis } from "ioredis";
import { keys } from "./keyspace";
import { readTotals, type Totals } from "./totals";

export const OVERVIEW_PATH = "/internal/overview";

export type ServiceOverview = { starts: Record<string, number>; totals: Totals };

/**
 * Counts this start of the process in its service's Redis, by INSTANCE_ID: the dashboard shows each
 * process's restarts (starts − 1), the same way locally and in containers.
 */
export async function recordStart(redis: Redis, instanceId: string): Promise<void> {
  await redis.hincrby(keys.processStarts, instanceId, 1);
}

export async function readOverview(redis: Redis): Promise<ServiceOverview> {
  const [starts, totals] = await Promise.all([redis.hgetall(keys.processStarts), readTotals(redis)]);
  return { starts: Object.fromEntries(Object.entries(starts).map(([name, count]) => [name, Number(count)])), totals };
}
