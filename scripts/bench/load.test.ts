import { afterAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { createSession } from "./client";
import { failureCode, NETWORK_ERROR, NOT_SENT, runLoad } from "./load";

/** Long enough for the request timeout below to pass, with room for a slow machine. */
setDefaultTimeout(60_000);

/** A loop with this much time sends every one of its few requests: only a stuck one runs out of it. */
const AMPLE_DURATION_MS = 60_000;
/** A request to this loopback server that takes longer than this is stuck, and timed out. */
const STUCK_REQUEST_TIMEOUT_MS = 5_000;

/**
 * A loopback server standing in for the gateway: /ok/N → 200, /refuse/N → 409, /held/N → 200 once
 * `heldRequests` is resolved (`onHeld` hears of each one as it arrives), /hang → never.
 */
const seen: string[] = [];
const releaseHung: (() => void)[] = [];
const heldRequests = Promise.withResolvers<void>();
let onHeld = (_arrivedAt: number) => {};
const server = Bun.serve({
  hostname: "127.0.0.1",
  port: 0,
  async fetch(req) {
    const path = new URL(req.url).pathname;
    seen.push(path);
    if (path.startsWith("/refuse/"))
      return Response.json({ error: "insufficient_stock", message: "no" }, { status: 409 });
    if (path.startsWith("/held/")) {
      onHeld(performance.now());
      await heldRequests.promise;
    }
    if (path === "/hang") await new Promise<void>((resolve) => releaseHung.push(resolve));
    return Response.json({ paid: true });
  },
});
const base = server.url.origin;
const session = createSession(16);

afterAll(() => {
  heldRequests.resolve();
  for (const release of releaseHung) release();
  session.close();
  server.stop(true);
});

describe("runLoad", () => {
  test("injects a fault the moment the N-th answer comes back, with the rest in flight or unsent, and the load runs on", async () => {
    const urls = Array.from({ length: 200 }, (_, i) => `${base}/ok/fault-${i}`);
    const arrived = () => seen.filter((path) => path.startsWith("/ok/fault-")).length;
    let arrivedAtInjection = -1;
    const result = await runLoad({
      urls,
      clients: 8,
      durationMs: AMPLE_DURATION_MS,
      session,
      fault: {
        afterAnswers: 50,
        inject: async () => {
          arrivedAtInjection = arrived();
        },
      },
    });
    expect(result.faultAt).toMatchObject({ answered: 50 });
    expect(result.faultAt!.inFlight).toBeGreaterThan(0);
    expect(result.faultAt!.sent).toBeLessThan(urls.length);
    expect(arrivedAtInjection).toBeLessThan(urls.length);
    expect(result.counts["2xx"]).toBe(urls.length);
  });

  test("fails when the load never reaches the fault's answer, and rethrows a fault that failed", async () => {
    const urls = [`${base}/ok/short-1`, `${base}/ok/short-2`];
    const inject = async () => {};
    await expect(
      runLoad({ urls, clients: 1, durationMs: AMPLE_DURATION_MS, session, fault: { afterAnswers: 3, inject } }),
    ).rejects.toThrow("only 2 came back");
    const failing = async () => {
      throw new Error("the kill failed");
    };
    await expect(
      runLoad({
        urls,
        clients: 1,
        durationMs: AMPLE_DURATION_MS,
        session,
        fault: { afterAnswers: 1, inject: failing },
      }),
    ).rejects.toThrow("the kill failed");
  });

  test("sends every URL exactly once and records each answer at its URL's index", async () => {
    seen.length = 0;
    const urls = Array.from({ length: 300 }, (_, i) => `${base}/${i % 3 === 0 ? "refuse" : "ok"}/${i}`);
    const result = await runLoad({ urls, clients: 16, durationMs: AMPLE_DURATION_MS, session });

    expect(result.exhausted).toBe(true);
    expect(result.sent).toBe(300);
    expect(new Set(seen).size).toBe(300);
    expect(seen).toHaveLength(300);
    expect(result.counts).toEqual({ "2xx": 200, "4xx": 100, "5xx": 0, network: 0, other: 0 });
    expect(result.failureCodes).toEqual({ insufficient_stock: 100 });
    expect(result.statuses[0]).toBe(409);
    expect(result.statuses[1]).toBe(200);
    expect(result.histogram.count).toBe(300);
  });

  test("starts no request once the time is up", async () => {
    const CLIENTS = 4;
    const DURATION_MS = 300;
    const URLS = 10_000;
    seen.length = 0;
    // Every request is held until the loop's time is up, so no client can start a second one in time:
    // any request beyond one per client was started after the time was up.
    const firstHeld = Promise.withResolvers<number>();
    onHeld = (arrivedAt) => firstHeld.resolve(arrivedAt);
    const urls = Array.from({ length: URLS }, (_, i) => `${base}/held/${i}`);
    const loop = runLoad({ urls, clients: CLIENTS, durationMs: DURATION_MS, session });
    // The loop's time started before its first request arrived: DURATION_MS after that arrival, it is up.
    const timeUp = (await firstHeld.promise) + DURATION_MS;
    while (performance.now() <= timeUp) await Bun.sleep(Math.max(1, timeUp - performance.now()));
    heldRequests.resolve();
    const result = await loop;

    expect(result.exhausted).toBe(false);
    expect(result.sent).toBeGreaterThanOrEqual(1);
    expect(result.sent).toBeLessThanOrEqual(CLIENTS);
    expect(seen).toHaveLength(result.sent);
    expect(result.statuses.filter((s) => s === NOT_SENT).length).toBe(URLS - result.sent);
  });

  test("a request that outlives the timeout is aborted and counted as a timeout", async () => {
    const result = await runLoad({
      urls: [`${base}/hang`, `${base}/ok/1`],
      clients: 1,
      durationMs: AMPLE_DURATION_MS,
      session,
      requestTimeoutMs: STUCK_REQUEST_TIMEOUT_MS,
    });

    expect(result.statuses[0]).toBe(NETWORK_ERROR);
    expect(result.statuses[1]).toBe(200);
    expect(result.failureCodes).toEqual({ timeout: 1 });
  });

  test("a refused connection is a network error, not a crash", async () => {
    const closed = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response() });
    const url = `${closed.url.origin}/ok/1`;
    closed.stop(true);
    const result = await runLoad({ urls: [url], clients: 1, durationMs: AMPLE_DURATION_MS, session });

    expect(result.counts.network).toBe(1);
    expect(result.failureCodes).toEqual({ network: 1 });
    expect(result.throughput).toBe(0);
  });

  test("with a request budget above the URL count, the URLs are cycled through", async () => {
    seen.length = 0;
    const urls = [`${base}/ok/a`, `${base}/ok/b`];
    const result = await runLoad({ urls, clients: 2, durationMs: AMPLE_DURATION_MS, maxRequests: 10, session });

    expect(result.sent).toBe(10);
    expect(seen.filter((p) => p === "/ok/a")).toHaveLength(5);
  });
});

describe("failureCode", () => {
  test("takes the error code of a JSON error body", () => {
    expect(failureCode(409, '{"error":"insufficient_credit","message":"x"}')).toBe("insufficient_credit");
  });

  test("falls back to the status for a body that is not a JSON error", () => {
    expect(failureCode(502, "<html>bad gateway</html>")).toBe("http_502");
    expect(failureCode(500, '{"message":"x"}')).toBe("http_500");
  });
});
