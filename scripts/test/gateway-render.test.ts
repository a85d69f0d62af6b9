/**
 * The rendered gateway config, run by a real nginx in front of tiny Bun servers on a private port
 * range: routing, what is hidden, which requests nginx re-sends when a replica dies under them, and
 * the active replica benched after it failed one (gateway-render-text.test.ts reads the text alone).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ACTIVE_BENCH_S } from "../../gateway/limits";
import { renderGatewayConfig } from "../../gateway/render";
import { httpOk } from "../lib/health";
import { nginxCommand } from "../lib/nginx";
import { stopGroup } from "../lib/pidfile";
import { findFreePortOffset } from "../lib/ports";
import { requirePrograms } from "../lib/prerequisites";
import { identify, waitUntil, type ProcessIdentity } from "../lib/procfs";
import { replicaPort, topology, LOOPBACK } from "../../deploy/topology";
import { rawRequest, type RawAnswer } from "./support/raw-http";
import { echoServer, hangUpServer, type Echo } from "./support/stand-in-replicas";

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
