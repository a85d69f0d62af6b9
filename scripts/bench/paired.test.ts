import { afterAll, describe, expect, test } from "bun:test";
import { emptyCounts, mergeLoads, type LoadResult } from "./load";
import { createHistogram, recordMs } from "./histogram";
import { mergeCpu } from "./machine";
import { checkoutWindows, shapeResult, type PreparedShape, type ShapeContext } from "./shapes/measure";
import { abbaOrder, measurePaired, WINDOWS_PER_SHAPE } from "./shapes/paired";

/**
 * The gateways answer no sooner than this: however fast the machine, a client sends at most one
 * checkout per ANSWER_DELAY_MS, so the windows below cannot use up the orders prepared for them.
 */
const ANSWER_DELAY_MS = 2;
/** A window this long sends every one of its few checkouts: only a stuck one runs out of it. */
const AMPLE_WINDOW_SECONDS = 60;

/** Two loopback "gateways"; every checkout they receive is recorded with the gateway that got it. */
const arrivals: Array<{ gateway: "a" | "b"; orderId: string }> = [];
const gateway = (name: "a" | "b") =>
  Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    async fetch(req) {
      arrivals.push({ gateway: name, orderId: new URL(req.url).pathname.split("/").at(-1)! });
      await Bun.sleep(ANSWER_DELAY_MS);
      return Response.json({ paid: true });
    },
  });
const gateways = { a: gateway("a"), b: gateway("b") };
afterAll(() => {
  for (const g of Object.values(gateways)) g.stop(true);
});

const window = (answered2xx: number, elapsedMs: number, latencyMs: number, cpu?: LoadResult["cpu"]): LoadResult => {
  const histogram = createHistogram();
  for (let i = 0; i < answered2xx; i++) recordMs(histogram, latencyMs);
  const counts = { ...emptyCounts(), "2xx": answered2xx };
  return {
    statuses: new Int16Array(0),
    histogram,
    counts,
    elapsedMs,
    sent: answered2xx,
    answered: answered2xx,
    throughput: answered2xx / (elapsedMs / 1000),
    failureCodes: {},
    exhausted: false,
    cpu,
  };
};

describe("windows merged into one load", () => {
  test("answers and latencies are pooled, and throughput is taken over the windows' summed time", () => {
    const merged = mergeLoads([window(300, 1_000, 10), window(100, 1_000, 30)]);
    expect(merged.answered).toBe(400);
    expect(merged.throughput).toBe(200);
    expect(merged.histogram.count).toBe(400);
    expect(merged.counts["2xx"]).toBe(400);
  });

  test("CPU per checkout is weighted by checkouts, the busy share by time; a window without a figure gives none", () => {
    expect(
      mergeCpu([
        { cpu: { busyShare: 1, msPerCheckout: 2 }, elapsedMs: 1_000, checkouts: 100 },
        { cpu: { busyShare: 0.5, msPerCheckout: 1 }, elapsedMs: 3_000, checkouts: 300 },
      ]),
    ).toEqual({ busyShare: 0.625, msPerCheckout: 1.25 });
    expect(mergeCpu([{ cpu: undefined, elapsedMs: 1_000, checkouts: 100 }])).toBeUndefined();
  });
});

describe("two shapes measured in turns", () => {
  test("the windows go A B B A A B B A, each shape's count of them", () => {
    expect(abbaOrder(4)).toEqual([0, 1, 1, 0, 0, 1, 1, 0]);
    expect(abbaOrder(2)).toEqual([0, 1, 1, 0]);
  });

  test("the shapes' checkouts arrive in turns, and each order is sent at most once over all windows", async () => {
    arrivals.length = 0;
    const CLIENTS = 4;
    const SECONDS = 0.8;
    // Far more than the clients can send in the windows' time (CLIENTS × SECONDS / ANSWER_DELAY_MS): no window runs dry.
    const ORDERS = 100_000;
    const ctx = (baseUrl: string): ShapeContext => ({
      baseUrl,
      clients: CLIENTS,
      seconds: SECONDS,
      warmupSeconds: 0,
      orders: 0,
      log: () => {},
    });
    const prepared = (shape: "skeleton" | "uniform", baseUrl: string): PreparedShape => {
      const windows = checkoutWindows(
        shape,
        baseUrl,
        Array.from({ length: ORDERS }, (_, i) => `${shape}-${i}`),
        CLIENTS,
      );
      return {
        shape,
        windows,
        finish: async () => shapeResult(shape, CLIENTS, SECONDS, windows.result().load, { ok: true, details: [] }, []),
        close: () => windows.close(),
      };
    };
    const a = ctx(gateways.a.url.origin);
    const results = await measurePaired(
      [prepared("skeleton", a.baseUrl), prepared("uniform", gateways.b.url.origin)],
      a,
    );

    // Runs of one gateway's arrivals, in order: the windows, merged where two of a shape follow each other.
    const runs: string[] = [];
    for (const { gateway } of arrivals) if (runs.at(-1) !== gateway) runs.push(gateway);
    expect(runs).toEqual(["a", "b", "a", "b", "a"]);
    const uniformIds = arrivals.filter((x) => x.gateway === "b").map((x) => x.orderId);
    expect(new Set(uniformIds).size).toBe(uniformIds.length);
    expect(results.map((r) => r.counts["2xx"])).toEqual([
      arrivals.filter((x) => x.gateway === "a").length,
      uniformIds.length,
    ]);
    expect(results[1]!.notes.at(-1)).toContain(`${WINDOWS_PER_SHAPE} windows of 0.2 s, in turns with skeleton`);
  });
});

describe("checkout windows", () => {
  test("orders that run out in one window leave the later windows empty, and the result says so", async () => {
    arrivals.length = 0;
    const windows = checkoutWindows("uniform", gateways.a.url.origin, ["1", "2", "3"], 2);
    try {
      await windows.measure(AMPLE_WINDOW_SECONDS);
      await windows.measure(AMPLE_WINDOW_SECONDS);
      const { load, sentOrderIds } = windows.result();
      expect(sentOrderIds.sort()).toEqual(["1", "2", "3"]);
      expect(arrivals).toHaveLength(3);
      expect(load.exhausted).toBe(true);
      expect(
        shapeResult("uniform", 2, 2 * AMPLE_WINDOW_SECONDS, load, { ok: true, details: [] }, []).notes[0],
      ).toContain("all 3 prepared checkouts were sent");
    } finally {
      windows.close();
    }
  });
});
