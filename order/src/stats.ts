/**
 * The dashboard's live figures (`GET /stats`, public through the gateway as /orders/stats): aggregate
 * and read-only, nothing per order or per user. Computed at most once per STATS_INTERVAL_MS however
 * many clients ask, from what is already at hand: this process's metrics, a count of the unfinished
 * sagas, and each service's overview (its processes' starts, its conservation totals). Nothing of it
 * is on a checkout's way.
 */
import { bucketsOf, metrics, sumOf } from "@checkout/common/metrics";
import { OVERVIEW_PATH, readOverview, type ServiceOverview } from "@checkout/common/overview";
import type { Totals } from "@checkout/common/totals";
import type { ServiceName } from "@checkout/common/config";
import type { Redis } from "ioredis";
import { z } from "zod";
import type { OrderStore } from "./orders";
import type { Peer, Peers } from "./peers";

/** The dashboard asks every second; figures are computed no more often than this. */
export const STATS_INTERVAL_MS = 1_000;
/** The route whose latency the dashboard shows (as the request-metrics middleware names it). */
export const CHECKOUT_ROUTE = "/checkout/:order_id";

const conservation = z
  .object({
    held: z.number().describe("stock on hand, or users' credit"),
    in_steps: z.number().describe("units sold, or money spent: taken by checkouts and not given back"),
    put_in: z.number().describe("net of every other change: created, added, subtracted, paid directly"),
    holds: z.boolean().describe("held + in_steps = put_in: nothing lost or created"),
  })
  .nullable()
  .describe("null while the service cannot be asked");

/** The answer of GET /stats (its OpenAPI description too). */
export const statsBody = z.object({
  at: z.string(),
  checkouts: z.object({ paid_per_s: z.number(), refused_per_s: z.number(), in_flight: z.number() }),
  latency_ms: z
    .object({ p50: z.number(), p99: z.number() })
    .nullable()
    .describe("checkout latency over the last interval; null when none was answered"),
  sagas_in_flight: z.number().int(),
  processes: z.array(
    z.object({ name: z.string(), service: z.enum(["order", "stock", "payment"]), restarts: z.number().int() }),
  ),
  conservation: z.object({ stock: conservation, payment: conservation }),
});

export type Stats = z.infer<typeof statsBody>;
export type Conservation = NonNullable<Stats["conservation"]["stock"]>;

/** Cumulative counts, as read at one moment. */
type Sample = { atMs: number; paid: number; refused: number; latency: Map<number, number> };

/**
 * The q-quantile of the observations counted in cumulative `buckets` (upper bound → count at or
 * below it), interpolated linearly inside its bucket; null when there are none. Pure.
 */
export function quantileOf(buckets: ReadonlyMap<number, number>, q: number): number | null {
  const bounds = [...buckets.keys()].sort((a, b) => a - b);
  const total = buckets.get(Number.POSITIVE_INFINITY) ?? buckets.get(bounds.at(-1)!) ?? 0;
  if (total <= 0) return null;
  const rank = q * total;
  let lower = 0;
  let below = 0;
  for (const bound of bounds) {
    const count = buckets.get(bound)!;
    if (count >= rank) {
      if (!Number.isFinite(bound)) return lower;
      return lower + ((bound - lower) * (rank - below)) / Math.max(count - below, 1);
    }
    lower = bound;
    below = count;
  }
  return lower;
}

/** `later − earlier`, bucket by bucket. */
export function bucketDelta(
  later: ReadonlyMap<number, number>,
  earlier: ReadonlyMap<number, number>,
): Map<number, number> {
  return new Map([...later].map(([bound, count]) => [bound, count - (earlier.get(bound) ?? 0)]));
}

export const conservationOf = (totals: Totals): Conservation => ({
  ...totals,
  holds: totals.held + totals.in_steps === totals.put_in,
});

export function createStats(orders: OrderStore, peers: Peers, redis: Redis) {
  let previous: Sample | undefined;
  let latest: { atMs: number; stats: Promise<Stats> } | undefined;

  const sample = async (): Promise<Sample> => ({
    atMs: performance.now(),
    paid: await sumOf(metrics.checkouts, (l) => l.outcome === "paid"),
    refused: await sumOf(metrics.checkouts, (l) => l.outcome === "refused"),
    latency: await bucketsOf(metrics.httpDuration, (l) => l.route === CHECKOUT_ROUTE),
  });

  const overviewOf = async (peer: Peer): Promise<ServiceOverview | null> => {
    const answer = await peer.get(OVERVIEW_PATH);
    return answer.kind === "ok" ? (answer.body as ServiceOverview) : null;
  };

  async function compute(): Promise<Stats> {
    const now = await sample();
    const before = previous ?? now;
    previous = now;
    const seconds = Math.max((now.atMs - before.atMs) / 1000, 1e-3);
    const perSecond = (a: number, b: number) => (now === before ? 0 : Math.max(0, a - b) / seconds);
    const window = bucketDelta(now.latency, before.latency);
    const p50 = quantileOf(window, 0.5);
    const p99 = quantileOf(window, 0.99);
    const [sagas, own, stock, payment] = await Promise.all([
      orders.unfinishedCount(),
      readOverview(redis),
      overviewOf(peers.stock),
      overviewOf(peers.payment),
    ]);
    const overviews: Array<[ServiceName, ServiceOverview | null]> = [
      ["order", own],
      ["stock", stock],
      ["payment", payment],
    ];
    return {
      at: new Date().toISOString(),
      checkouts: {
        paid_per_s: perSecond(now.paid, before.paid),
        refused_per_s: perSecond(now.refused, before.refused),
        in_flight: await sumOf(metrics.checkoutsInFlight),
      },
      latency_ms: p50 === null || p99 === null ? null : { p50: p50 * 1000, p99: p99 * 1000 },
      sagas_in_flight: sagas,
      processes: overviews.flatMap(([service, overview]) =>
        Object.entries(overview?.starts ?? {})
          .sort(([a], [b]) => a.localeCompare(b))
          .map(([name, starts]) => ({ name, service, restarts: Math.max(0, starts - 1) })),
      ),
      conservation: {
        stock: stock && conservationOf(stock.totals),
        payment: payment && conservationOf(payment.totals),
      },
    };
  }

  return {
    /** The latest figures, computed anew once they are STATS_INTERVAL_MS old. */
    current(): Promise<Stats> {
      const nowMs = performance.now();
      if (!latest || nowMs - latest.atMs >= STATS_INTERVAL_MS) {
        const stats = compute();
        latest = { atMs: nowMs, stats };
        // A failed computation is not kept: the next request tries again.
        stats.catch(() => (latest = undefined));
      }
      return latest.stats;
    },
  };
}

export type StatsSource = ReturnType<typeof createStats>;
