/**
 * The conservation meter's running totals, kept in each participant's Redis (`meta:totals`) inside
 * the same MULTI as the changes they count, so that reading them costs the checkout nothing:
 *
 *   held       stock on hand (Σ item stock), or credit (Σ user credit)
 *   in_steps   units taken, or money charged, by saga steps and not given back: what was sold or spent
 *   put_in     net of every change that is not a saga step (create, add, subtract, batch_init, add_funds, pay)
 *
 * Each saga step moves an amount between the entity and its step record (`op:<opId>`) in one
 * transaction, so `held + in_steps = put_in` holds whatever checkouts do. The two sides are measured
 * on different keys (the item or user, and the step record): a step rule that took twice, or gave back
 * without a record, or a record without its effect, shows as the two sides parting.
 *
 * Totals are not in the log. Recovery of a Redis from its log counts them anew from the recovered
 * entities (rebuildTotals), with `put_in` taken as what it finds: the meter starts again from there.
 */
import type { Redis } from "ioredis";
import type { ServiceName } from "./config";
import { keys, parseStored } from "./keyspace";
import type { Hash } from "./log";

export type TotalName = "held" | "in_steps" | "put_in";
export type Totals = Record<TotalName, number>;

/** What one kind of entity contributes to a total. */
type Measure = { keyPrefix: string; total: Exclude<TotalName, "put_in">; amount: (hash: Hash) => number };

const applied = (hash: Hash) => hash.state === "applied";
const unitsOf = (items: string | undefined) =>
  (JSON.parse(items ?? "[]") as Array<[string, number]>).reduce((sum, [, units]) => sum + units, 0);

const MEASURES: Record<ServiceName, readonly Measure[]> = {
  order: [],
  stock: [
    { keyPrefix: "item:", total: "held", amount: (h) => Number(h.stock) },
    { keyPrefix: "op:", total: "in_steps", amount: (h) => (applied(h) ? unitsOf(h.items) : 0) },
  ],
  payment: [
    { keyPrefix: "user:", total: "held", amount: (h) => Number(h.credit) },
    { keyPrefix: "op:", total: "in_steps", amount: (h) => (applied(h) ? Number(h.amount) : 0) },
  ],
};

/** The saga steps: every other change that moves what is held is a flow in or out (`put_in`). */
const STEP_OPS: ReadonlySet<string> = new Set(["stock.take", "stock.restore", "payment.charge", "payment.refund"]);

export const measured = (service: ServiceName) => MEASURES[service].length > 0;

/**
 * What writing `writes` in order, over the states `before` them, adds to each total. Pure; `opOf`
 * names the change that made a write.
 */
export function totalsDelta(
  service: ServiceName,
  writes: ReadonlyArray<{ key: string; hash: Hash; seq: number }>,
  before: ReadonlyMap<string, Hash | null>,
  opOf: (seq: number) => string,
): Partial<Totals> {
  const delta: Partial<Totals> = {};
  const measures = MEASURES[service];
  if (measures.length === 0) return delta;
  const current = new Map<string, Hash | null>();
  for (const { key, hash, seq } of writes) {
    const measure = measures.find((m) => key.startsWith(m.keyPrefix));
    if (!measure) continue;
    const previous = current.has(key) ? current.get(key)! : (before.get(key) ?? null);
    current.set(key, hash);
    const moved = measure.amount(hash) - (previous ? measure.amount(previous) : 0);
    if (moved === 0) continue;
    delta[measure.total] = (delta[measure.total] ?? 0) + moved;
    if (!STEP_OPS.has(opOf(seq))) delta.put_in = (delta.put_in ?? 0) + moved;
  }
  return delta;
}

const TOTAL_NAMES: readonly TotalName[] = ["held", "in_steps", "put_in"];

/**
 * HINCRBY of every total, queued in the caller's MULTI, once any of them moved: the hash then always
 * holds all three, as rebuildTotals writes it.
 */
export function addTotals(
  tx: { hincrby(key: string, field: string, by: number): unknown },
  delta: Partial<Totals>,
): void {
  if (!TOTAL_NAMES.some((total) => (delta[total] ?? 0) !== 0)) return;
  for (const total of TOTAL_NAMES) tx.hincrby(keys.totals, total, delta[total] ?? 0);
}

export async function readTotals(redis: Redis): Promise<Totals> {
  const stored = await redis.hgetall(keys.totals);
  return { held: Number(stored.held ?? 0), in_steps: Number(stored.in_steps ?? 0), put_in: Number(stored.put_in ?? 0) };
}

/** Keys per SCAN and MGET while counting the totals anew. */
const REBUILD_CHUNK = 1_000;

/** Counts the totals anew from every entity (recovery, with the Redis private to it). */
export async function rebuildTotals(redis: Redis, service: ServiceName): Promise<Totals> {
  const totals: Totals = { held: 0, in_steps: 0, put_in: 0 };
  for (const measure of MEASURES[service]) {
    let cursor = "0";
    do {
      const [next, found] = await redis.scan(cursor, "MATCH", `${measure.keyPrefix}*`, "COUNT", REBUILD_CHUNK);
      cursor = next;
      if (found.length === 0) continue;
      for (const value of await redis.mget(...found)) {
        const hash = parseStored(value);
        if (hash) totals[measure.total] += measure.amount(hash);
      }
    } while (cursor !== "0");
  }
  if (measured(service)) {
    totals.put_in = totals.held + totals.in_steps;
    // No hash while nothing was ever held, as addTotals writes none: a Redis whose books balanced
    // before it was lost is rebuilt with exactly the totals it had.
    const rewrite = redis.multi().del(keys.totals);
    if (TOTAL_NAMES.some((total) => totals[total] !== 0)) rewrite.hset(keys.totals, totals);
    await rewrite.exec();
  }
  return totals;
}
