/**
 * The closed load loop: C clients, each sending its next request as soon as the previous one is
 * answered (no think time), until the time is up or the request budget is spent. Request i goes to
 * urls[i mod urls.length], so with maxRequests = urls.length every URL (every order) is sent at most
 * once. Per request the loop allocates only what fetch itself needs: URLs are precomputed, the
 * request options are reused, and the request timeout is one watchdog timer for all clients instead
 * of a timer per request.
 */
import { createHistogram, mergeInto, recordMs, type Histogram } from "./histogram";
import { REQUEST_TIMEOUT_MS } from "./client";
import { machineCpu, mergeCpu, readCpuTicks, type MachineCpu } from "./machine";

/** `statuses[i]` of a URL that was never sent. */
export const NOT_SENT = 0;
/** `statuses[i]` of a request that failed without an HTTP answer (refused, reset, timed out). */
export const NETWORK_ERROR = -1;

export type StatusCounts = { "2xx": number; "4xx": number; "5xx": number; network: number; other: number };
export type StatusClass = keyof StatusCounts;

export type LoadProgress = {
  elapsedMs: number;
  answered: number;
  counts: Readonly<StatusCounts>;
};

export type LoadOptions = {
  urls: readonly string[];
  clients: number;
  /** No request is started after this; requests in flight are still awaited (up to the timeout). */
  durationMs: number;
  /** Total requests at most; defaults to urls.length (each URL once). */
  maxRequests?: number;
  method?: "POST" | "GET";
  session: Bun.FetchSession;
  requestTimeoutMs?: number;
  /** Once aborted, no further request is started (requests in flight are still awaited). */
  stopSignal?: AbortSignal;
  /** Called about once a second while the loop runs. */
  onProgress?: (progress: LoadProgress) => void;
  /** A fault to inject in the middle of the load, on an event the loop observes (tests only). */
  fault?: LoadFault;
};

/**
 * A fault (a kill, a wipe) started the moment the `afterAnswers`-th answer comes back, while the other
 * clients' requests are still in flight and the rest are not sent yet: it lands mid-load on a machine
 * of any speed, where a fault after a fixed delay could find the load over. The load goes on while it
 * runs; runLoad awaits it before returning, and fails if the load never got that far.
 */
export type LoadFault = { afterAnswers: number; inject: () => Promise<void> };

/** Where the load stood when the fault was injected. */
export type FaultMoment = { answered: number; inFlight: number; sent: number };

export type LoadResult = {
  /** Per URL index: the HTTP status of its last answer, NOT_SENT or NETWORK_ERROR. */
  statuses: Int16Array;
  histogram: Histogram;
  counts: StatusCounts;
  /** From the first request to the last answer. */
  elapsedMs: number;
  sent: number;
  answered: number;
  /**
   * Decided checkouts (2xx and 4xx answers) per second over elapsedMs. Errors are left out: a system
   * that refuses connections answers fast, and that must not look like throughput.
   */
  throughput: number;
  /** Non-2xx answers by the `error` code of their JSON body (or `http_<status>`), and `timeout`/`network`. */
  failureCodes: Record<string, number>;
  /** True when the loop stopped because every request was spent before the time was up. */
  exhausted: boolean;
  /** The whole machine's CPU over the loop (absent where /proc/stat is not available). */
  cpu?: MachineCpu;
  /** Present when options.fault was given: the load's state at the moment it was injected. */
  faultAt?: FaultMoment;
};

/** What a shape reports of its load, whether it was sent in one window or in several. */
export type LoadSummary = Omit<LoadResult, "statuses" | "faultAt">;

/**
 * Several windows of load as one: latencies and answers pooled, throughput over the windows' summed
 * time (the gaps between them left out), CPU per checkout over all of them.
 */
export function mergeLoads(windows: readonly LoadResult[]): LoadSummary {
  if (windows.length === 0) throw new Error("mergeLoads needs at least one window");
  const histogram = createHistogram();
  const counts = emptyCounts();
  const failureCodes: Record<string, number> = {};
  let elapsedMs = 0;
  let sent = 0;
  let answered = 0;
  for (const w of windows) {
    mergeInto(histogram, w.histogram);
    for (const key of Object.keys(counts) as StatusClass[]) counts[key] += w.counts[key];
    for (const [code, n] of Object.entries(w.failureCodes)) failureCodes[code] = (failureCodes[code] ?? 0) + n;
    elapsedMs += w.elapsedMs;
    sent += w.sent;
    answered += w.answered;
  }
  const cpuParts = windows.map((w) => ({ cpu: w.cpu, elapsedMs: w.elapsedMs, checkouts: decided(w.counts) }));
  return {
    histogram,
    counts,
    elapsedMs,
    sent,
    answered,
    throughput: decided(counts) / (elapsedMs / 1000),
    failureCodes,
    exhausted: windows.at(-1)!.exhausted,
    cpu: mergeCpu(cpuParts),
  };
}

const PROGRESS_INTERVAL_MS = 1_000;
const WATCHDOG_INTERVAL_MS = 250;

export function classify(status: number): StatusClass {
  if (status === NETWORK_ERROR) return "network";
  if (status >= 200 && status < 300) return "2xx";
  if (status >= 400 && status < 500) return "4xx";
  if (status >= 500 && status < 600) return "5xx";
  return "other";
}

/** Answers that carry a business outcome: the order was paid (2xx) or refused (4xx). */
export function decided(counts: Readonly<StatusCounts>): number {
  return counts["2xx"] + counts["4xx"];
}

export function emptyCounts(): StatusCounts {
  return { "2xx": 0, "4xx": 0, "5xx": 0, network: 0, other: 0 };
}

/** The `error` field of a JSON error body, as API.md specifies; `http_<status>` when there is none. */
export function failureCode(status: number, body: string): string {
  try {
    const parsed: unknown = JSON.parse(body);
    if (parsed && typeof parsed === "object" && "error" in parsed && typeof parsed.error === "string") {
      return parsed.error;
    }
  } catch {
    // Not JSON (a gateway error page, say): the status is all there is to go on.
  }
  return `http_${status}`;
}

/** One client's in-flight state, read by the watchdog. */
type ClientSlot = {
  startedAt: number;
  timedOut: boolean;
  controller: AbortController;
  init: { method: string; signal: AbortSignal };
};

function newSlot(method: string): ClientSlot {
  const controller = new AbortController();
  return { startedAt: 0, timedOut: false, controller, init: { method, signal: controller.signal } };
}

export async function runLoad(options: LoadOptions): Promise<LoadResult> {
  const { urls, session } = options;
  const method = options.method ?? "POST";
  const maxRequests = options.maxRequests ?? urls.length;
  const timeoutMs = options.requestTimeoutMs ?? REQUEST_TIMEOUT_MS;
  if (urls.length === 0 || maxRequests <= 0) throw new Error("runLoad needs at least one request to send");

  const statuses = new Int16Array(urls.length);
  const histogram = createHistogram();
  const counts = emptyCounts();
  const failureCodes: Record<string, number> = {};
  const slots = Array.from({ length: Math.max(1, Math.min(options.clients, maxRequests)) }, () => newSlot(method));

  const ticksBefore = await readCpuTicks();
  const startedAt = performance.now();
  const stopStartingAt = startedAt + options.durationMs;
  let next = 0;
  let answered = 0;
  let lastAnswerAt = startedAt;
  let faultAt: FaultMoment | undefined;
  let faultInjected = Promise.resolve();
  let faultFailure: { error: unknown } | undefined;

  function countFailure(code: string): void {
    failureCodes[code] = (failureCodes[code] ?? 0) + 1;
  }

  async function client(slot: ClientSlot): Promise<void> {
    while (next < maxRequests && performance.now() < stopStartingAt && !options.stopSignal?.aborted) {
      const index = next++;
      const urlIndex = index % urls.length;
      const url = urls[urlIndex] as string;
      slot.startedAt = performance.now();
      let status: number;
      try {
        const res = await session.fetch(url, slot.init);
        status = res.status;
        // The body must be read for the connection to go back to the pool; only failures are parsed.
        if (res.ok) await res.arrayBuffer();
        else countFailure(failureCode(status, await res.text()));
      } catch {
        status = NETWORK_ERROR;
        countFailure(slot.timedOut ? "timeout" : "network");
        slot.timedOut = false;
      }
      const now = performance.now();
      recordMs(histogram, now - slot.startedAt);
      slot.startedAt = 0;
      statuses[urlIndex] = status;
      counts[classify(status)] += 1;
      answered += 1;
      lastAnswerAt = now;
      if (options.fault && answered === options.fault.afterAnswers) {
        faultAt = { answered, inFlight: next - answered, sent: next };
        // Caught here and rethrown once the load is over, so a failing fault never goes unhandled.
        faultInjected = options.fault.inject().catch((error: unknown) => {
          faultFailure = { error };
        });
      }
    }
  }

  // One timer aborts whichever request has waited too long; the client gets a fresh controller
  // (a signal cannot be un-aborted) for its next request.
  const watchdog = setInterval(() => {
    const now = performance.now();
    for (const slot of slots) {
      if (slot.startedAt !== 0 && !slot.timedOut && now - slot.startedAt > timeoutMs) {
        slot.timedOut = true;
        slot.controller.abort();
        const fresh = newSlot(method);
        slot.controller = fresh.controller;
        slot.init = fresh.init;
      }
    }
  }, WATCHDOG_INTERVAL_MS);
  const reporter = options.onProgress
    ? setInterval(
        () => options.onProgress!({ elapsedMs: performance.now() - startedAt, answered, counts }),
        PROGRESS_INTERVAL_MS,
      )
    : undefined;

  try {
    await Promise.all(slots.map(client));
    await faultInjected;
    if (faultFailure) throw faultFailure.error;
  } finally {
    clearInterval(watchdog);
    if (reporter) clearInterval(reporter);
  }
  if (options.fault && !faultAt) {
    throw new Error(
      `the fault was to be injected after ${options.fault.afterAnswers} answers, but only ${answered} came back`,
    );
  }

  const ticksAfter = await readCpuTicks();
  const elapsedMs = Math.max(lastAnswerAt - startedAt, 1);
  const cpu =
    ticksBefore && ticksAfter
      ? machineCpu(ticksBefore, ticksAfter, performance.now() - startedAt, decided(counts))
      : undefined;
  return {
    statuses,
    histogram,
    counts,
    elapsedMs,
    sent: next,
    answered,
    throughput: decided(counts) / (elapsedMs / 1000),
    failureCodes,
    exhausted: next >= maxRequests,
    cpu,
    faultAt,
  };
}
