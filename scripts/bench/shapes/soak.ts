/**
 * soak: checkouts for a long stretch on a stack of its own whose step records are kept a short
 * retention (STEP_RECORD_RETENTION_S, common/src/retention.ts), with each Redis's memory and key
 * count sampled and printed as they go. It ends with the slope of each over the last half of the run:
 * once the first records expire, as many expire as are written, and the slope is flat. Run with a
 * retention longer than the run, it shows what the records cost when they are kept.
 *
 * The orders are made in rounds: batch_init makes ROUND_ORDERS fresh orders under the same ids, and
 * they are checked out; then the next round. The order Redis holds the same orders throughout, so its
 * memory measures what checkouts leave behind, not how many orders were made.
 */
import { Redis } from "ioredis";
import { SERVICES, type ServiceName } from "../../../common/src/config";
import { BATCH_INIT_TIMEOUT_MS, createSession, type Api } from "../client";
import { mergeLoads, runLoad, type LoadResult } from "../load";
import type { ShapeResult } from "../report";
import { batchInitBody } from "../schemas";
import { readCredit, readStock } from "../state";
import { withExpectations, type InvariantReport } from "../verify";
import {
  batchIds,
  prepareThroughApi,
  settleIfUndecided,
  shapeResult,
  shuffled,
  timed,
  type ShapeContext,
} from "./measure";

export const SOAK = {
  items: 10_000,
  users: 10_000,
  /** Enough for any run: a checkout takes two units and two of credit. */
  startingStock: 1_000_000_000,
  startingCredit: 1_000_000_000,
  itemPrice: 1,
  /** Each order holds two lines of one unit each (orders batch_init). */
  unitsPerOrder: 2,
  roundOrders: 20_000,
  sampleEveryMs: 5_000,
  /** The least retention allowed (common/src/timing.ts, minStepRecordRetentionMs), rounded up. */
  defaultRetentionS: 70,
  /** Four retentions: the last half of the run starts well after the first records expired. */
  defaultSeconds: 300,
  /** A series that grows by at most this share of what is written is flat (lastHalfTrend). */
  flatShare: 0.1,
} as const;

/** One reading of the three Redises: seconds since the load began, checkouts answered by then, bytes used, keys. */
export type Sample = {
  at: number;
  checkouts: number;
  memory: Record<ServiceName, number>;
  keys: Record<ServiceName, number>;
};

/** The least-squares slope of `values` over `times` (per unit of time); 0 with fewer than two points. */
export function slope(times: readonly number[], values: readonly number[]): number {
  const n = times.length;
  if (n < 2) return 0;
  const meanT = times.reduce((a, b) => a + b, 0) / n;
  const meanV = values.reduce((a, b) => a + b, 0) / n;
  let num = 0;
  let den = 0;
  for (let i = 0; i < n; i++) {
    num += (times[i]! - meanT) * (values[i]! - meanV);
    den += (times[i]! - meanT) ** 2;
  }
  return den === 0 ? 0 : num / den;
}

export type Trend = { perMinute: number; mean: number; flat: boolean };

/**
 * The trend of one series over the samples of the last half of the run. Flat: it changes by at most
 * SOAK.flatShare of `writtenPerMinute`, what it would grow by a minute if nothing expired (step records:
 * one a checkout); a series with no such growth (the orders) is flat if its change over the last half
 * stays within that share of its mean.
 */
export function lastHalfTrend(
  samples: readonly Sample[],
  value: (s: Sample) => number,
  writtenPerMinute?: number,
): Trend {
  const half = lastHalf(samples);
  const perMinute =
    60 *
    slope(
      half.map((s) => s.at),
      half.map(value),
    );
  const mean = half.reduce((a, s) => a + value(s), 0) / Math.max(half.length, 1);
  const minutes = ((half.at(-1)?.at ?? 0) - (half[0]?.at ?? 0)) / 60;
  const flat =
    writtenPerMinute === undefined
      ? Math.abs(perMinute * minutes) <= SOAK.flatShare * mean
      : Math.abs(perMinute) <= SOAK.flatShare * writtenPerMinute;
  return { perMinute, mean, flat };
}

function lastHalf(samples: readonly Sample[]): Sample[] {
  const end = samples.at(-1)?.at ?? 0;
  return samples.filter((s) => s.at >= end / 2);
}

const mb = (bytes: number) => (bytes / 1024 / 1024).toFixed(1);
const signed = (n: number, digits = 0) => `${n >= 0 ? "+" : ""}${n.toFixed(digits)}`;
const direction = (t: Trend) => (t.flat ? "flat" : t.perMinute > 0 ? "rising" : "falling");

function formatSample(s: Sample): string {
  const perService = SERVICES.map((name) => `${name} ${mb(s.memory[name])} MB ${s.keys[name]} keys`).join("  ");
  return `[soak] ${String(Math.round(s.at)).padStart(4)} s  ${String(s.checkouts).padStart(7)} checkouts  ${perService}`;
}

/** Each Redis's trends over the last half; `bytesPerRecord`: what one step record takes in stock's and payment's. */
export function formatTrends(
  samples: readonly Sample[],
  bytesPerRecord: Partial<Record<ServiceName, number>>,
): string[] {
  const half = lastHalf(samples);
  const checkoutsPerMinute =
    60 *
    slope(
      half.map((s) => s.at),
      half.map((s) => s.checkouts),
    );
  return SERVICES.map((name) => {
    const perRecord = bytesPerRecord[name];
    const written = perRecord === undefined ? undefined : checkoutsPerMinute;
    const memory = lastHalfTrend(
      samples,
      (s) => s.memory[name],
      written === undefined ? undefined : written * perRecord!,
    );
    const keys = lastHalfTrend(samples, (s) => s.keys[name], written);
    const share = (t: Trend, of: number | undefined) =>
      of ? `, ${Math.round((100 * Math.abs(t.perMinute)) / of)} % of what is written` : "";
    return (
      `  ${name.padEnd(8)} memory ${signed(memory.perMinute / 1024, 1)} KB/min around ${mb(memory.mean)} MB ` +
      `(${direction(memory)}${share(memory, written && written * perRecord!)}), ` +
      `keys ${signed(keys.perMinute)}/min around ${Math.round(keys.mean)} (${direction(keys)}${share(keys, written)})`
    );
  });
}

async function readRedis(clients: Record<ServiceName, Redis>): Promise<Pick<Sample, "memory" | "keys">> {
  const memory = {} as Record<ServiceName, number>;
  const keys = {} as Record<ServiceName, number>;
  for (const name of SERVICES) {
    const info = await clients[name].info("memory");
    memory[name] = Number(/^used_memory:(\d+)/m.exec(info)?.[1] ?? 0);
    keys[name] = await clients[name].dbsize();
  }
  return { memory, keys };
}

export type SoakStack = { gatewayUrl: string; redisPorts: Readonly<Record<ServiceName, number>> };

/** The soak against `stack`, started with the retention `retentionS` (the caller started it so). */
export async function runSoak(ctx: ShapeContext, stack: SoakStack, retentionS: number): Promise<ShapeResult> {
  const clients = Object.fromEntries(
    SERVICES.map((name) => [
      name,
      new Redis({ host: "127.0.0.1", port: stack.redisPorts[name], maxRetriesPerRequest: 3 }),
    ]),
  ) as Record<ServiceName, Redis>;
  for (const client of Object.values(clients)) client.on("error", () => {});
  // What each Redis uses before it holds anything: its own overhead, left out of the per-entity figures.
  const empty = await readRedis(clients);
  const { api } = await prepareThroughApi(stack.gatewayUrl, (api) =>
    timed(ctx.log, `[soak] batch_init of ${SOAK.items} items, ${SOAK.users} users`, async () => {
      await api.post(
        `/stock/batch_init/${SOAK.items}/${SOAK.startingStock}/${SOAK.itemPrice}`,
        batchInitBody,
        BATCH_INIT_TIMEOUT_MS,
      );
      await api.post(`/payment/batch_init/${SOAK.users}/${SOAK.startingCredit}`, batchInitBody, BATCH_INIT_TIMEOUT_MS);
    }),
  );
  const samples: Sample[] = [];
  const loads: LoadResult[] = [];
  const session = createSession(ctx.clients);
  try {
    const before = await readRedis(clients);
    ctx.log(
      `[soak] step records kept ${retentionS} s; ${ctx.seconds} s of checkouts in rounds of ${SOAK.roundOrders} orders; ` +
        `a sample every ${SOAK.sampleEveryMs / 1000} s`,
    );
    if (ctx.seconds / 2 < retentionS)
      ctx.log(
        `[soak] the last half of ${ctx.seconds} s begins before the first records expire (${retentionS} s): it cannot be flat`,
      );
    const perEntity = (name: ServiceName, count: number) =>
      Math.round((before.memory[name] - empty.memory[name]) / count);
    ctx.log(
      `[soak] live entities: ${SOAK.items} items, ${perEntity("stock", SOAK.items)} B each in stock's Redis; ` +
        `${SOAK.users} users, ${perEntity("payment", SOAK.users)} B each in payment's`,
    );
    const started = performance.now();
    const elapsedS = () => (performance.now() - started) / 1000;
    let answeredInEarlierRounds = 0;
    let answeredInRound = 0;
    const sample = async () => {
      const reading = {
        at: elapsedS(),
        checkouts: answeredInEarlierRounds + answeredInRound,
        ...(await readRedis(clients)),
      };
      samples.push(reading);
      ctx.log(formatSample(reading));
    };
    await sample();
    const sampler = setInterval(() => void sample().catch(() => {}), SOAK.sampleEveryMs);
    try {
      while (elapsedS() < ctx.seconds && !ctx.signal?.aborted) {
        await api.post(
          `/orders/batch_init/${SOAK.roundOrders}/${SOAK.items}/${SOAK.users}/${SOAK.itemPrice}`,
          batchInitBody,
          BATCH_INIT_TIMEOUT_MS,
        );
        answeredInRound = 0;
        loads.push(
          await runLoad({
            urls: shuffled(batchIds(SOAK.roundOrders)).map((id) => `${stack.gatewayUrl}/orders/checkout/${id}`),
            clients: ctx.clients,
            durationMs: (ctx.seconds - elapsedS()) * 1000,
            session,
            stopSignal: ctx.signal,
            onProgress: (p) => {
              answeredInRound = p.answered;
            },
          }),
        );
        answeredInEarlierRounds += loads.at(-1)!.answered;
        answeredInRound = 0;
      }
    } finally {
      clearInterval(sampler);
    }
    await sample();
    ctx.signal?.throwIfAborted();
    const load = mergeLoads(loads);
    const last = samples.at(-1)!;
    const bytesPerRecord = (name: ServiceName) => {
      const count = last.keys[name] - before.keys[name];
      return count > 0 ? Math.round((last.memory[name] - before.memory[name]) / count) : 0;
    };
    const records = (name: ServiceName) =>
      `${last.keys[name] - before.keys[name]} step records, ${bytesPerRecord(name)} B each`;
    const trends = formatTrends(samples, { stock: bytesPerRecord("stock"), payment: bytesPerRecord("payment") });
    console.log(
      `[soak] after ${load.counts["2xx"]} paid checkouts: stock ${mb(last.memory.stock)} MB (${records("stock")}), ` +
        `payment ${mb(last.memory.payment)} MB (${records("payment")}), order ${mb(last.memory.order)} MB ` +
        `(${SOAK.roundOrders} orders, ${Math.round((last.memory.order - empty.memory.order) / SOAK.roundOrders)} B each)`,
    );
    console.log(
      `[soak] slope over the last half of the run (from ${Math.round(elapsedS() / 2)} s):\n${trends.join("\n")}`,
    );
    const notes = await settleIfUndecided(load, ctx.log);
    const invariants = await timed(ctx.log, "[soak] verifying every item and user", () =>
      verify(api, load.counts["2xx"], load.counts["4xx"], notes.length === 0),
    );
    return shapeResult("soak", ctx.clients, ctx.seconds, load, invariants, [
      ...notes,
      `step records kept ${retentionS} s`,
      ...trends.map((t) => t.trim()),
    ]);
  } finally {
    session.close();
    api.close();
    for (const client of Object.values(clients)) client.disconnect();
  }
}

/**
 * Orders are made anew every round, so each is not read back; the totals are: every unit of stock
 * taken was paid for, and every paid checkout took its units, once.
 */
async function verify(api: Api, paid: number, refusals: number, allDecided: boolean): Promise<InvariantReport> {
  const ids = batchIds(SOAK.items);
  const stock = await readStock(api, ids);
  const credit = await readCredit(api, batchIds(SOAK.users));
  let taken = 0;
  let charged = 0;
  for (const units of stock.values()) taken += SOAK.startingStock - units;
  for (const left of credit.values()) charged += SOAK.startingCredit - left;
  const details: string[] = [];
  if (stock.size !== SOAK.items || credit.size !== SOAK.users)
    details.push(`read ${stock.size} items and ${credit.size} users back`);
  if (taken * SOAK.itemPrice !== charged) details.push(`${taken} units taken but ${charged} credit charged`);
  if (allDecided && taken !== paid * SOAK.unitsPerOrder)
    details.push(`${taken} units taken for ${paid} paid checkouts of ${SOAK.unitsPerOrder} units`);
  return withExpectations(
    { ok: details.length === 0, details },
    refusals === 0 ? [] : [`${refusals} checkouts were refused although every item and user has plenty`],
  );
}
