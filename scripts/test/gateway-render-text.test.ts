/** The rendered gateway config read as text: each location's retry policy and timeouts, and each balancing's upstreams. */
import { describe, expect, test } from "bun:test";
import { TIMING } from "../../common/src/timing";
import { ACTIVE_BENCH_S, BATCH_INIT_READ_TIMEOUT_S, PROXY_CONNECT_TIMEOUT_MS } from "../../gateway/limits";
import { renderGatewayConfig } from "../../gateway/render";

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
