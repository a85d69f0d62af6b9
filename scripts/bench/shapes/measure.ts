/** What every shape does the same way: send checkouts, wait for stragglers, build a result. */
import { Api, createSession, SIDE_CONCURRENCY } from "../client";
import { summarize } from "../histogram";
import { mergeLoads, NOT_SENT, runLoad, type LoadResult, type LoadSummary } from "../load";
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

export type Checkouts = { load: LoadSummary; answers: Map<string, number>; sentOrderIds: string[] };

/**
 * Checkouts of `orderIds` from `clients` concurrent clients, sent in windows: an unmeasured warm-up,
 * then one measured window or several (interleaved with another shape's, see paired.ts). Each order
 * is sent at most once over all windows, unless `maxRequests` asks for more per window, in which
 * case the ids are cycled through.
 */
export function checkoutWindows(
  label: ShapeName,
  baseUrl: string,
  orderIds: readonly string[],
  clients: number,
  options: { maxRequests?: number; signal?: AbortSignal } = {},
) {
  const session = createSession(clients);
  const answers = new Map<string, number>();
  const sentOrderIds: string[] = [];
  const measured: LoadResult[] = [];
  const allUrls = orderIds.map((id) => `${baseUrl}/orders/checkout/${id}`);
  /** Where each order is sent once, the next window goes on with the orders not yet sent. */
  let firstUnsent = 0;

  async function send(seconds: number, progressLabel?: string): Promise<LoadResult> {
    const progress = progressLabel === undefined ? undefined : progressPrinter(progressLabel);
    try {
      const load = await runLoad({
        urls: options.maxRequests ? allUrls : allUrls.slice(firstUnsent),
        clients,
        durationMs: seconds * 1000,
        maxRequests: options.maxRequests,
        stopSignal: options.signal,
        session,
        onProgress: progress?.onProgress,
      });
      // An interrupted run has nothing to verify: its stack is being stopped.
      options.signal?.throwIfAborted();
      if (!options.maxRequests) {
        load.statuses.forEach((status, i) => {
          if (status === NOT_SENT) return;
          const id = orderIds[firstUnsent + i] as string;
          answers.set(id, status);
          sentOrderIds.push(id);
        });
        firstUnsent += load.sent;
      }
      return load;
    } finally {
      progress?.done();
    }
  }

  return {
    /**
     * The same kind of checkouts, answered and verified like the rest, but not measured: a fresh
     * process runs its code cold (JIT), and the first seconds would be measuring that.
     */
    async warmUp(seconds: number): Promise<void> {
      if (seconds > 0) await send(seconds);
    },
    async measure(seconds: number, progressLabel: string = label): Promise<void> {
      // Orders that ran out in an earlier window leave nothing to send (the result notes it).
      const ranOut = !options.maxRequests && firstUnsent >= allUrls.length && measured.length > 0;
      if (!ranOut) measured.push(await send(seconds, progressLabel));
    },
    /** What the measured windows did, as one load, and every answer (the warm-up's too) for verification. */
    result(): Checkouts {
      return { load: mergeLoads(measured), answers, sentOrderIds };
    },
    close(): void {
      session.close();
    },
  };
}

export type CheckoutWindows = ReturnType<typeof checkoutWindows>;

/** A shape whose data is ready: its checkouts, to be sent in windows, and how to verify and report them. */
export type PreparedShape = {
  readonly shape: ShapeName;
  readonly windows: CheckoutWindows;
  /** Verifies what the windows did (the warm-up's checkouts too) and builds the result. */
  finish(): Promise<ShapeResult>;
  close(): void;
};

/**
 * A shape's data, made through an API client that then lives as long as the shape (its verification
 * reads through it, and `preparedShape` closes it); closed at once if making the data fails.
 */
export async function prepareThroughApi<D>(
  baseUrl: string,
  make: (api: Api) => Promise<D>,
): Promise<{ api: Api; data: D }> {
  const api = new Api(baseUrl, createSession(SIDE_CONCURRENCY));
  try {
    return { api, data: await make(api) };
  } catch (err) {
    api.close();
    throw err;
  }
}

/** A prepared shape whose closing closes its windows and, if it has one, its API client. */
export function preparedShape(
  shape: ShapeName,
  windows: CheckoutWindows,
  api: Api | undefined,
  finish: () => Promise<ShapeResult>,
): PreparedShape {
  return {
    shape,
    windows,
    finish,
    close() {
      windows.close();
      api?.close();
    },
  };
}

/** A warm-up, then one measured window of `ctx.seconds`, then the verification. */
export async function measureAlone(prepared: PreparedShape, ctx: ShapeContext): Promise<ShapeResult> {
  try {
    await prepared.windows.warmUp(ctx.warmupSeconds);
    await prepared.windows.measure(ctx.seconds);
    return await prepared.finish();
  } finally {
    prepared.close();
  }
}

/** Waits for undecided sagas to settle before state is read back (see UNDECIDED_SETTLE_MS). */
export async function settleIfUndecided(load: LoadSummary, log: (line: string) => void): Promise<string[]> {
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
  load: LoadSummary,
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
