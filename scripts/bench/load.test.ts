import { afterAll, describe, expect, test } from "bun:test";
import { createSession } from "./client";
import { failureCode, NETWORK_ERROR, NOT_SENT, runLoad } from "./load";

/** A loopback server standing in for the gateway: /ok/N → 200, /refuse/N → 409, /slow/N → 200 after 50 ms, /hang → never. */
const seen: string[] = [];
const releaseHung: (() => void)[] = [];
const server = Bun.serve({
  hostname: "127.0.0.1",
  port: 0,
  async fetch(req) {
    const path = new URL(req.url).pathname;
    seen.push(path);
    if (path.startsWith("/refuse/")) return Response.json({ error: "insufficient_stock", message: "no" }, { status: 409 });
    if (path.startsWith("/slow/")) await Bun.sleep(50);
    if (path === "/hang") await new Promise<void>((resolve) => releaseHung.push(resolve));
    return Response.json({ paid: true });
  },
});
const base = server.url.origin;
const session = createSession(16);

afterAll(() => {
  for (const release of releaseHung) release();
  session.close();
  server.stop(true);
});

describe("runLoad", () => {
  test("sends every URL exactly once and records each answer at its URL's index", async () => {
    seen.length = 0;
    const urls = Array.from({ length: 300 }, (_, i) => `${base}/${i % 3 === 0 ? "refuse" : "ok"}/${i}`);
    const result = await runLoad({ urls, clients: 16, durationMs: 30_000, session });

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
    const urls = Array.from({ length: 10_000 }, (_, i) => `${base}/slow/${i}`);
    const started = performance.now();
    const result = await runLoad({ urls, clients: 4, durationMs: 300, session });

    expect(result.exhausted).toBe(false);
    // Each client sends one request per ~50 ms: about 6 in 300 ms, and never one after the deadline.
    expect(result.sent).toBeLessThanOrEqual(4 * Math.ceil(300 / 50 + 2));
    expect(result.statuses.filter((s) => s === NOT_SENT).length).toBe(10_000 - result.sent);
    expect(performance.now() - started).toBeLessThan(2_000);
  });

  test("a request that outlives the timeout is aborted and counted as a timeout", async () => {
    const result = await runLoad({ urls: [`${base}/hang`, `${base}/ok/1`], clients: 1, durationMs: 10_000, session, requestTimeoutMs: 300 });

    expect(result.statuses[0]).toBe(NETWORK_ERROR);
    expect(result.statuses[1]).toBe(200);
    expect(result.failureCodes).toEqual({ timeout: 1 });
  });

  test("a refused connection is a network error, not a crash", async () => {
    const closed = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response() });
    const url = `${closed.url.origin}/ok/1`;
    closed.stop(true);
    const result = await runLoad({ urls: [url], clients: 1, durationMs: 1_000, session });

    expect(result.counts.network).toBe(1);
    expect(result.failureCodes).toEqual({ network: 1 });
    expect(result.throughput).toBe(0);
  });

  test("with a request budget above the URL count, the URLs are cycled through", async () => {
    seen.length = 0;
    const urls = [`${base}/ok/a`, `${base}/ok/b`];
    const result = await runLoad({ urls, clients: 2, durationMs: 10_000, maxRequests: 10, session });

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
