/** What every shape does the same way: send checkouts, wait for stragglers, build a result. */
import { createSession } from "../client";
import { summarize } from "../histogram";
import { NOT_SENT, runLoad, type LoadResult } from "../load";
import { progressPrinter, type ShapeName, type ShapeResult } from "../report";
import type { InvariantReport } from "../verify";

export type ShapeContext = {
  /** The gateway of the system under test. */
  baseUrl: string;
  clients: number;
  seconds: number;
  /** Orders prepared by the shapes that batch_init them. */
  orders: number;
  /** Checkouts are sent this long before the measured run, unmeasured, so that it finds the processes warm. */
  warmupSeconds: number;
  log: (line: string) => void;
  /** Aborted when the run is interrupted: no further checkout is sent. */
  signal?: AbortSignal;
};

/**
 * A checkout answered with neither 2xx nor 4xx may still be running its saga; reading state back
 * while it does would catch it half-way. Wait this long before verifying when there are such answers.
 */
export const UNDECIDED_SETTLE_MS = 5_000;

export type Checkouts = { load: LoadResult; answers: Map<string, number>; sentOrderIds: string[] };

/**
 * Checks out `orderIds` from `clients` concurrent clients for `seconds`: each at most once, unless
 * `maxRequests` asks for more, in which case the ids are cycled through.
 */
export async function checkOut(
  label: ShapeName,
  baseUrl: string,
  orderIds: readonly string[],
  clients: number,
  seconds: number,
  options: { maxRequests?: number; signal?: AbortSignal; warmupSeconds?: number } = {},
): Promise<Checkouts> {
  const session = createSession(clients);
  const answers = new Map<string, number>();
  const sentOrderIds: string[] = [];
  const collect = (ids: readonly string[], load: LoadResult) =>
    load.statuses.forEach((status, i) => {
      if (status === NOT_SENT) return;
      answers.set(ids[i] as string, status);
      sentOrderIds.push(ids[i] as string);
    });
  const allUrls = orderIds.map((id) => `${baseUrl}/orders/checkout/${id}`);
  // Warm-up: the same kind of checkouts, answered and verified like the rest, but not measured. A
  // fresh process runs its code cold (JIT), and the first seconds would be measuring that. Where each
  // order is checked out once (no maxRequests), the measured run goes on with the orders not yet sent.
  let firstMeasured = 0;
  if (options.warmupSeconds && options.warmupSeconds > 0) {
    const warmup = await runLoad({
      urls: allUrls,
      clients,
      durationMs: options.warmupSeconds * 1000,
      maxRequests: options.maxRequests,
      stopSignal: options.signal,
      session,
    });
    if (!options.maxRequests) {
      collect(orderIds, warmup);
      firstMeasured = warmup.sent;
    }
  }
  const progress = progressPrinter(label);
  try {
    const load = await runLoad({
      urls: allUrls.slice(firstMeasured),
      clients,
      durationMs: seconds * 1000,
      maxRequests: options.maxRequests,
      stopSignal: options.signal,
      session,
      onProgress: progress.onProgress,
    });
    // An interrupted run has nothing to verify: its stack is being stopped.
    options.signal?.throwIfAborted();
    collect(orderIds.slice(firstMeasured), load);
    return { load, answers, sentOrderIds };
  } finally {
    progress.done();
    session.close();
  }
}

/** Waits for undecided sagas to settle before state is read back (see UNDECIDED_SETTLE_MS). */
export async function settleIfUndecided(load: LoadResult, log: (line: string) => void): Promise<string[]> {
  const undecided = load.counts["5xx"] + load.counts.network + load.counts.other;
  if (undecided === 0) return [];
  log(`  ${undecided} checkouts got no business answer; waiting ${UNDECIDED_SETTLE_MS / 1000} s before verifying`);
  await Bun.sleep(UNDECIDED_SETTLE_MS);
  return [`${undecided} checkouts ended without a 2xx/4xx answer; verified ${UNDECIDED_SETTLE_MS / 1000} s later`];
}

export function shapeResult(
  shape: ShapeName,
  clients: number,
  seconds: number,
  load: LoadResult,
  invariants: InvariantReport,
  notes: string[],
): ShapeResult {
  // Running out of orders early makes a throughput figure incomparable; hot sends all at once by design.
  if (shape !== "hot" && load.exhausted && load.elapsedMs < seconds * 1000) {
    notes = [...notes, `all ${load.sent} prepared checkouts were sent before the ${seconds} s were up`];
  }
  return {
    shape,
    clients,
    seconds,
    elapsedSeconds: load.elapsedMs / 1000,
    throughput: load.throughput,
    latency: summarize(load.histogram),
    counts: load.counts,
    failureCodes: load.failureCodes,
    invariants,
    notes,
    cpu: load.cpu,
  };
}

/** Runs `step` and logs how long it took: preparation and verification time tell a lot about a system too. */
export async function timed<T>(log: (line: string) => void, what: string, step: () => Promise<T>): Promise<T> {
  const started = performance.now();
  const result = await step();
  log(`${what} took ${((performance.now() - started) / 1000).toFixed(1)} s`);
  return result;
}

/** A uniformly random permutation of `ids` (Fisher–Yates): checkouts do not walk the ids in the order they were created. */
export function shuffled<T>(ids: readonly T[]): T[] {
  const out = [...ids];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [out[i], out[j]] = [out[j] as T, out[i] as T];
  }
  return out;
}

/** "0" … "n-1": the ids batch_init gives. */
export function batchIds(n: number): string[] {
  return Array.from({ length: n }, (_, i) => String(i));
}
