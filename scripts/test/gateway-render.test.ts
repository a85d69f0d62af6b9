/**
 * The rendered gateway config, run by a real nginx in front of tiny Bun servers on a private port
 * range: routing, what is hidden, which requests nginx re-sends when a replica dies under them, and
 * the active replica benched after it failed one.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { TIMING } from "../../common/src/timing";
import { ACTIVE_BENCH_S, BATCH_INIT_READ_TIMEOUT_S, PROXY_CONNECT_TIMEOUT_MS } from "../../gateway/limits";
import { renderGatewayConfig } from "../../gateway/render";
import { httpOk } from "../lib/health";
import { nginxCommand } from "../lib/nginx";
import { stopGroup } from "../lib/pidfile";
import { findFreePortOffset } from "../lib/ports";
import { requirePrograms } from "../lib/prerequisites";
import { identify, waitUntil, type ProcessIdentity } from "../lib/procfs";
import { replicaPort, topology, LOOPBACK } from "../../deploy/topology";
import { rawRequest, type RawAnswer } from "./support/raw-http";

/** An nginx that does not answer its health check within this long is stuck. */
const NGINX_START_TIMEOUT_MS = 30_000;
const POLL_INTERVAL_MS = 50;
/**
 * Past the active replica's bench, nginx tries it again. nginx counts the bench in whole seconds
 * (`now - checked <= fail_timeout`), so it may last a second longer. (nginx's own timer: a slow
 * machine only waits longer.)
 */
const BENCH_OVER_MS = (ACTIVE_BENCH_S + 1.5) * 1000;
/** What a test that first waits out the bench may take beyond it. */
const TEST_TIMEOUT_MS = 30_000;

type Echo = { server: ReturnType<typeof Bun.serve>; hits: () => number };

/** A replica that answers every request with what it received. */
function echoServer(name: string, port: number): Echo {
  let hits = 0;
  const server = Bun.serve({
    hostname: LOOPBACK,
    port,
    fetch(request) {
      hits += 1;
      const url = new URL(request.url);
      return Response.json({ server: name, method: request.method, path: url.pathname + url.search });
    },
  });
  return { server, hits: () => hits };
}

/** A replica that dies under every request: it reads it, then closes the connection without answering. */
function hangUpServer(port: number): {
  listener: { stop(closeActiveConnections?: boolean): void };
  hits: () => number;
} {
  let hits = 0;
  const answered = new WeakSet<object>();
  const listener = Bun.listen({
    hostname: LOOPBACK,
    port,
    socket: {
      data(socket) {
        if (answered.has(socket)) return;
        answered.add(socket);
        hits += 1;
        socket.end();
      },
    },
  });
  return { listener, hits: () => hits };
}

let dir: string;
let gateway: string;
let nginx: ProcessIdentity | undefined;
let nginxOutput = "";
let hangUp: ReturnType<typeof hangUpServer>;
let order: Echo;
let stock: Echo;
let payment: Echo;

beforeAll(async () => {
  const programs = requirePrograms();
  const t = topology(2, await findFreePortOffset(2));
  gateway = `http://${LOOPBACK}:${t.ports.gateway}`;
  // order-1 hangs up on every request, order-2 answers; nothing listens at stock-1, stock-2 answers;
  // one replica for payment.
  hangUp = hangUpServer(replicaPort(t, "order", 1));
  order = echoServer("order-2", replicaPort(t, "order", 2));
  stock = echoServer("stock-2", replicaPort(t, "stock", 2));
  payment = echoServer("payment-1", replicaPort(t, "payment", 1));

  dir = mkdtempSync(join(tmpdir(), "gateway-render-"));
  writeFileSync(
    join(dir, "nginx.conf"),
    renderGatewayConfig({
      listenPort: t.ports.gateway,
      listenAddress: LOOPBACK,
      upstreams: {
        order: [`${LOOPBACK}:${replicaPort(t, "order", 1)}`, `${LOOPBACK}:${replicaPort(t, "order", 2)}`],
        stock: [`${LOOPBACK}:${replicaPort(t, "stock", 1)}`, `${LOOPBACK}:${replicaPort(t, "stock", 2)}`],
        payment: [`${LOOPBACK}:${replicaPort(t, "payment", 1)}`],
      },
      runtimeDir: dir,
      workerProcesses: 1,
    }),
  );
  const child = Bun.spawn(nginxCommand(programs.nginx, dir), {
    detached: true,
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
  nginx = identify(child.pid);
  void new Response(child.stderr).text().then((text) => (nginxOutput += text));
  const up = await waitUntil(() => httpOk(`${gateway}/health`), NGINX_START_TIMEOUT_MS, POLL_INTERVAL_MS);
  if (!up) throw new Error(`nginx did not start: ${nginxOutput}`);
});

afterAll(async () => {
  if (nginx) await stopGroup(nginx);
  hangUp?.listener.stop(true);
  for (const echo of [order, stock, payment]) await echo?.server.stop(true);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function call(
  method: "GET" | "POST",
  path: string,
): Promise<{ status: number; type: string | null; body: Record<string, unknown> }> {
  // A redirect is an answer of its own here, not something to follow.
  const response = await fetch(`${gateway}${path}`, { method, redirect: "manual" });
  return {
    status: response.status,
    type: response.headers.get("content-type"),
    body: (await response.json()) as Record<string, unknown>,
  };
}

describe("the rendered text", () => {
  const text = renderGatewayConfig({
    listenPort: 8000,
    upstreams: { order: ["o1:8101", "o2:8102"], stock: ["s1:8201"], payment: ["p1:8301"] },
  });
  const locations = [...text.matchAll(/location ([^{]+?) \{([^}]*)\}/g)].map((m) => ({ where: m[1]!, body: m[2]! }));
  const proxied = locations.filter((l) => l.body.includes("proxy_pass"));

  test("only checkout may be re-sent after it reached a replica, and it waits longer than the saga's deadline", () => {
    const resent = proxied.filter((l) => l.body.includes("non_idempotent"));
    expect(resent.map((l) => l.where)).toEqual(["/orders/checkout/"]);
    const timeout = Number(/proxy_read_timeout (\d+)s;/.exec(resent[0]!.body)?.[1]);
    expect(timeout).toBeGreaterThanOrEqual(60);
    expect(timeout * 1000).toBeGreaterThan(TIMING.checkoutAnswerDeadlineMs);
  });

  test("every proxied location states its retry policy: non_idempotent only for checkout, error and timeout elsewhere", () => {
    // Per service: the catch-all, /health, one read path and batch_init; and checkout.
    expect(proxied).toHaveLength(13);
    for (const { where, body } of proxied) {
      const policy = /proxy_next_upstream ([^;]+);/.exec(body)?.[1];
      // Without non_idempotent nginx passes a POST on only if it could not be sent at all.
      const expected = where === "/orders/checkout/" ? "error timeout non_idempotent" : "error timeout";
      expect({ where, policy }).toEqual({ where, policy: expected });
    }
  });

  test("batch_init, one request that may write a million entities, is waited for longer than any other request", () => {
    const readTimeout = (body: string) =>
      Number(/proxy_read_timeout (\d+)s;/.exec(body)?.[1] ?? /proxy_read_timeout (\d+)s;/.exec(text)?.[1]);
    const bulk = proxied.filter((l) => l.where.endsWith("/batch_init/"));
    expect(bulk.map((l) => l.where)).toEqual(["/orders/batch_init/", "/stock/batch_init/", "/payment/batch_init/"]);
    const others = Math.max(...proxied.filter((l) => !bulk.includes(l)).map((l) => readTimeout(l.body)));
    for (const { where, body } of bulk)
      expect({ where, timeout: readTimeout(body) }).toEqual({ where, timeout: BATCH_INIT_READ_TIMEOUT_S });
    expect(BATCH_INIT_READ_TIMEOUT_S).toBeGreaterThan(others);
  });

  test("the first replica of a service is active and benched for a moment after a failure; the others stand by, never benched", () => {
    expect(text).toContain(`server o1:8101 max_fails=1 fail_timeout=${ACTIVE_BENCH_S}s;`);
    expect(text).toContain("server o2:8102 max_fails=0 backup;");
    // A lone replica is never benched: there would be nothing else to try.
    expect(text).toContain("server s1:8201 max_fails=0;");
  });

  test("connecting to a replica gives up quickly: an address that leads nowhere costs one request a moment", () => {
    expect(text).toContain(`proxy_connect_timeout ${PROXY_CONNECT_TIMEOUT_MS}ms;`);
    expect(PROXY_CONNECT_TIMEOUT_MS).toBeLessThanOrEqual(500);
    expect(ACTIVE_BENCH_S).toBeGreaterThanOrEqual(1);
  });

  test("upstream connections are kept alive, and requests are not logged", () => {
    for (const service of ["order", "stock", "payment"])
      expect(text).toMatch(new RegExp(`upstream ${service} \\{[^}]*keepalive \\d+;`));
    expect(text).toContain("proxy_http_version 1.1;");
    expect(text).toContain('proxy_set_header Connection "";');
    expect(text).toContain("access_log off;");
  });
});

describe("routing", () => {
  test("each public prefix is stripped before the request reaches its service", async () => {
    // Nothing listens at stock-1: its requests are passed on to stock-2 unsent.
    expect((await call("GET", "/stock/find/item-7?x=1")).body).toEqual({
      server: "stock-2",
      method: "GET",
      path: "/find/item-7?x=1",
    });
    expect((await call("POST", "/stock/add/item-7/5")).body).toEqual({
      server: "stock-2",
      method: "POST",
      path: "/add/item-7/5",
    });
    expect((await call("POST", "/payment/pay/u1/10")).body).toEqual({
      server: "payment-1",
      method: "POST",
      path: "/pay/u1/10",
    });
    expect((await call("GET", "/payment/find_user/u1")).body).toEqual({
      server: "payment-1",
      method: "GET",
      path: "/find_user/u1",
    });
    // GET reaches order-1 first (the active replica), which hangs up; it is re-sent to order-2.
    for (let i = 0; i < 4; i++) {
      expect((await call("GET", "/orders/find/o1")).body).toEqual({
        server: "order-2",
        method: "GET",
        path: "/find/o1",
      });
    }
  });

  test("internal saga endpoints are not reachable through the gateway", async () => {
    const before = stock.hits() + payment.hits() + order.hits();
    for (const path of [
      "/stock/internal/subtract",
      "/payment/internal/x/y",
      "/orders/internal",
      "/stock/%69nternal/x",
      "/stock/a/../internal/x",
      "/stock/x/INTERNAL/y",
    ]) {
      for (const method of ["GET", "POST"] as const) {
        const { status, type, body } = await call(method, path);
        expect({ path, method, status, type, error: body.error }).toEqual({
          path,
          method,
          status: 404,
          type: "application/json",
          error: "not_found",
        });
      }
    }
    expect(stock.hits() + payment.hits() + order.hits()).toBe(before);
  });

  test("an unknown path answers 404 with a JSON error", async () => {
    // A route's path without its id included: nginx would answer those with a 301 to the path with a
    // slash, which a client that counts any non-4xx checkout as paid would take for a payment.
    const paths = [
      "/",
      "/nope",
      "/orders",
      "/stocks/find/1",
      "/payment",
      "/orders/checkout",
      "/orders/find",
      "/stock/find",
      "/payment/find_user",
      "/stock/batch_init",
    ];
    const before = stock.hits() + payment.hits() + order.hits();
    for (const [path, method] of paths.flatMap(
      (path) =>
        [
          [path, "GET"],
          [path, "POST"],
        ] as const,
    )) {
      const { status, type, body } = await call(method, path);
      expect({ path, status, type, error: body.error, hasMessage: typeof body.message === "string" }).toEqual({
        path,
        status: 404,
        type: "application/json",
        error: "not_found",
        hasMessage: true,
      });
    }
    expect(stock.hits() + payment.hits() + order.hits()).toBe(before);
  });

  test("a request nginx refuses before any service sees it answers a JSON 4xx too", async () => {
    const before = stock.hits() + payment.hits() + order.hits();
    const refusals: Array<[string, Promise<RawAnswer>, number]> = [
      ["a malformed %-escape", rawRequest(gateway, "GET", "/stock/find/%zz"), 400],
      ["an escaped NUL", rawRequest(gateway, "POST", "/stock/add/item-7/5%00"), 400],
      ["a method nginx does not serve", rawRequest(gateway, "TRACE", "/stock/find/item-7"), 405],
      ["a path beyond nginx's buffers", rawRequest(gateway, "GET", `/stock/find/${"a".repeat(9_000)}`), 414],
      [
        "a header beyond nginx's buffers",
        rawRequest(gateway, "GET", "/stock/find/item-7", undefined, { "X-Big": "a".repeat(20_000) }),
        400,
      ],
      [
        "one of the gateway's own error pages, asked for directly",
        rawRequest(gateway, "GET", "/_gateway_error/400"),
        404,
      ],
    ];
    for (const [what, answer, status] of refusals) {
      const { status: got, body } = await answer;
      expect({ what, status: got, error: typeof body?.error, message: typeof body?.message }).toEqual({
        what,
        status,
        error: "string",
        message: "string",
      });
    }
    expect(stock.hits() + payment.hits() + order.hits()).toBe(before);
  });
});

describe("retries when a replica dies under a request", () => {
  test("a POST whose active replica takes no connection (nothing listens there) goes to the standby", async () => {
    for (const path of ["/stock/add/item-7/5", "/stock/subtract/item-7/1", "/stock/batch_init/10/1/1"]) {
      const answered = stock.hits();
      const { status, body } = await call("POST", path);
      expect({ status, server: body.server, path: body.path }).toEqual({
        status: 200,
        server: "stock-2",
        path: path.slice("/stock".length),
      });
      expect(stock.hits()).toBe(answered + 1);
    }
  });

  test(
    "a checkout reaches the active replica first, is re-sent to the standby when it hangs up, and the active is then benched",
    async () => {
      await Bun.sleep(BENCH_OVER_MS);
      const hungUp = hangUp.hits();
      expect(await call("POST", "/orders/checkout/o42")).toMatchObject({
        status: 200,
        body: { server: "order-2", method: "POST", path: "/checkout/o42" },
      });
      expect(hangUp.hits()).toBe(hungUp + 1);
      // Benched: the next checkouts go to the standby without trying it.
      for (let i = 0; i < 3; i++)
        expect(await call("POST", "/orders/checkout/o43")).toMatchObject({ status: 200, body: { server: "order-2" } });
      expect(hangUp.hits()).toBe(hungUp + 1);
    },
    BENCH_OVER_MS + TEST_TIMEOUT_MS,
  );

  test(
    "any other POST that reached a replica is not re-sent: the client gets a JSON 502",
    async () => {
      await Bun.sleep(BENCH_OVER_MS);
      const hungUp = hangUp.hits();
      const answered = order.hits();
      const { status, type, body } = await call("POST", "/orders/addItem/o42/i1/1");
      expect({ status, type, error: body.error }).toEqual({
        status: 502,
        type: "application/json",
        error: "bad_gateway",
      });
      expect(hangUp.hits()).toBe(hungUp + 1);
      expect(order.hits()).toBe(answered);
    },
    BENCH_OVER_MS + TEST_TIMEOUT_MS,
  );
});

describe("balancing", () => {
  const upstream = (config: string, service: string) =>
    new RegExp(`upstream ${service} \\{([^}]*)\\}`)
      .exec(config)![1]!
      .trim()
      .split("\n")
      .filter((l) => l.includes("server "));
  const upstreams = { order: ["o1:1", "o2:2"], stock: ["s1:1", "s2:2"], payment: ["p1:1"] };

  test("active/standby: the first replica is benched when it fails, the others are backups", () => {
    const lines = upstream(renderGatewayConfig({ listenPort: 1, upstreams }), "order").map((l) => l.trim());
    expect(lines).toEqual([
      `server o1:1 max_fails=1 fail_timeout=${ACTIVE_BENCH_S}s;`,
      "server o2:2 max_fails=0 backup;",
    ]);
  });

  test("round robin: every replica takes its turn, is benched when it fails, and stands by, never benched, for when all are", () => {
    const config = renderGatewayConfig({ listenPort: 1, upstreams, balancing: "round-robin" });
    expect(upstream(config, "stock").map((l) => l.trim())).toEqual([
      ...["s1:1", "s2:2"].map((s) => `server ${s} max_fails=1 fail_timeout=${ACTIVE_BENCH_S}s;`),
      ...["s1:1", "s2:2"].map((s) => `server ${s} max_fails=0 backup;`),
    ]);
  });
});
