/**
 * What an operator sees, on one real local stack: each process's Prometheus metrics on its own port,
 * behind the internal secret and never through the gateway; the order service's unfinished sagas on
 * its own port; the public aggregate figures the dashboard shows.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { SERVICES } from "../../../common/src/config";
import { internalAuthorization } from "../../../common/src/internal";
import { eventually } from "../../../common/test/support/eventually";
import { call, errorBody, get, post } from "../../../common/test/support/http";
import { metricsPort, replicaName, replicaPort, topology } from "../../../deploy/topology";
import type { Stack } from "../../lib/stack";
import { startLocalTestStack, TEST_REPLICAS, type TestStack } from "../support/test-stack";

setDefaultTimeout(120_000);

let shop: TestStack & { stack: Stack };
let secret: Record<string, string>;

beforeAll(async () => {
  shop = await startLocalTestStack();
  secret = internalAuthorization(shop.stack.internalSecret);
});

afterAll(async () => {
  await shop?.stop();
});

const gateway = (path: string) => `${shop.gatewayUrl}${path}`;
const t = () =>
  topology(TEST_REPLICAS, 0, {
    serviceBase: shop.stack.ports.serviceBase,
    redis: shop.stack.ports.redis,
    gateway: shop.stack.ports.gateway,
  });

async function metricsOf(
  service: (typeof SERVICES)[number],
  index: number,
  headers: Record<string, string> = secret,
): Promise<{ status: number; text: string }> {
  const response = await fetch(`http://127.0.0.1:${metricsPort(t(), service, index)}/metrics`, { headers });
  return { status: response.status, text: await response.text() };
}

/** The value of one series in Prometheus text, or undefined. */
const seriesValue = (text: string, series: string) => {
  const line = text.split("\n").find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
};

/** An item, a user with credit, and `count` orders of one unit each. */
async function shopWithOrders(
  count: number,
  credit = 1_000,
): Promise<{ itemId: string; userId: string; orderIds: string[] }> {
  const itemId = (await post(gateway("/stock/item/create/3"))).body.item_id as string;
  await post(gateway(`/stock/add/${itemId}/100`));
  const userId = (await post(gateway("/payment/create_user"))).body.user_id as string;
  await post(gateway(`/payment/add_funds/${userId}/${credit}`));
  const orderIds: string[] = [];
  for (let i = 0; i < count; i++) {
    const orderId = (await post(gateway(`/orders/create/${userId}`))).body.order_id as string;
    await post(gateway(`/orders/addItem/${orderId}/${itemId}/1`));
    orderIds.push(orderId);
  }
  return { itemId, userId, orderIds };
}

describe("metrics", () => {
  test("every service replica serves Prometheus text on its own port, to the internal secret only", async () => {
    for (const service of SERVICES) {
      for (const index of [1, 2]) {
        const answer = await metricsOf(service, index);
        expect({ name: replicaName(service, index), status: answer.status }).toEqual({
          name: replicaName(service, index),
          status: 200,
        });
        expect(answer.text).toContain("# TYPE checkout_http_requests_total counter");
        expect(answer.text).toContain("process_cpu_seconds_total");
        expect((await metricsOf(service, index, {})).status).toBe(401);
        expect((await metricsOf(service, index, internalAuthorization("x".repeat(64)))).status).toBe(401);
      }
    }
  });

  test("count the checkouts, their saga steps, the group commits and the durable log writes", async () => {
    const { orderIds } = await shopWithOrders(3);
    for (const orderId of orderIds) expect((await post(gateway(`/orders/checkout/${orderId}`))).status).toBe(200);
    const order = (await metricsOf("order", 1)).text;
    expect(
      seriesValue(order, 'checkout_checkouts_total{outcome="paid",reason="",service="order"}'),
    ).toBeGreaterThanOrEqual(3);
    expect(
      seriesValue(order, 'checkout_saga_steps_sent_total{step="take_stock",service="order"}'),
    ).toBeGreaterThanOrEqual(3);
    expect(
      seriesValue(
        order,
        'checkout_http_requests_total{route="/checkout/:order_id",method="POST",status="200",service="order"}',
      ),
    ).toBeGreaterThanOrEqual(3);
    const stock = (await metricsOf("stock", 1)).text;
    expect(seriesValue(stock, 'checkout_tx_batch_size_count{service="stock"}')).toBeGreaterThan(0);
    expect(seriesValue(stock, 'checkout_log_durable_wait_seconds_count{service="stock"}')).toBeGreaterThan(0);
    expect(seriesValue(stock, 'checkout_redis_round_trips_total{service="stock"}')).toBeGreaterThan(0);
  });

  test("are not served through the gateway, nor on any address but BIND_ADDRESS", async () => {
    for (const path of ["/orders/metrics", "/stock/metrics", "/payment/metrics"])
      expect((await get(gateway(path))).status).toBe(404);
    // Loopback is 127.0.0.0/8: a port bound to 127.0.0.1 alone refuses 127.0.0.2.
    const elsewhere = await fetch(`http://127.0.0.2:${metricsPort(t(), "order", 1)}/metrics`, { headers: secret }).then(
      (r) => r.status,
      () => "refused",
    );
    expect(elsewhere).toBe("refused");
  });
});

describe("the sagas in flight", () => {
  const sagas = (index = 1, headers = secret) =>
    call("GET", `http://127.0.0.1:${replicaPort(t(), "order", index)}/internal/sagas`, undefined, headers);

  test("are listed on the order process's own port, to the internal secret only, never through the gateway", async () => {
    expect(await sagas()).toEqual({
      status: 200,
      body: { counts: { running: 0, compensating: 0 }, total: 0, listed: 0, sagas: [] },
    });
    expect((await sagas(1, {})).status).toBe(401);
    expect(await get(gateway("/orders/internal/sagas"))).toEqual({ status: 404, body: errorBody("not_found") });
  });

  test("show a saga waiting on a participant that is down: its state, step, lease holder, age and last error", async () => {
    const { orderIds } = await shopWithOrders(1);
    const [orderId] = orderIds as [string];
    shop.stack.setRestart(false);
    try {
      await Promise.all([shop.stack.kill("payment-1", "SIGKILL"), shop.stack.kill("payment-2", "SIGKILL")]);
      const checkout = post(gateway(`/orders/checkout/${orderId}`));
      let listed: { body: { counts: Record<string, number>; sagas: Array<Record<string, unknown>> } } | undefined;
      expect(
        await eventually(async () => {
          listed = await sagas();
          return listed.body.sagas.some((s) => s.order_id === orderId && s.last_error !== null);
        }),
      ).toBe(true);
      const saga = listed!.body.sagas.find((s) => s.order_id === orderId)!;
      expect(saga).toEqual({
        order_id: orderId,
        attempt: 1,
        state: "running",
        step: 0,
        lease_holder: replicaName("order", 1),
        lease_left_ms: expect.any(Number),
        age_ms: expect.any(Number),
        last_error: expect.stringContaining("charge_credit"),
      });
      expect(listed!.body.counts.running).toBeGreaterThanOrEqual(1);
      expect((await get(gateway("/orders/stats"))).body.sagas_in_flight).toBeGreaterThanOrEqual(1);
      shop.stack.setRestart(true);
      expect([200, 409]).toContain((await checkout).status);
    } finally {
      shop.stack.setRestart(true);
      await shop.stack.waitHealthy();
    }
  });
});

describe("the dashboard's figures, GET /orders/stats", () => {
  test("are public and aggregate: rates, sagas, each process's restarts, and the conservation meter, which holds", async () => {
    const { orderIds } = await shopWithOrders(2, 3);
    for (const orderId of orderIds) await post(gateway(`/orders/checkout/${orderId}`));
    const stats = (await get(gateway("/orders/stats"))).body;
    expect(Object.keys(stats).sort()).toEqual([
      "at",
      "checkouts",
      "conservation",
      "latency_ms",
      "processes",
      "sagas_in_flight",
    ]);
    expect(stats.processes.map((p: { name: string }) => p.name).sort()).toEqual(
      SERVICES.flatMap((s) => [1, 2].map((i) => replicaName(s, i))).sort(),
    );
    expect(stats.conservation.stock).toMatchObject({ holds: true });
    expect(stats.conservation.payment).toMatchObject({ holds: true });
    const { held, in_steps, put_in } = stats.conservation.payment;
    expect(held + in_steps).toBe(put_in);
    expect(in_steps).toBeGreaterThan(0);
  });

  test("count a killed process's restart", async () => {
    const restartsOf = async (name: string) =>
      ((await get(gateway("/orders/stats"))).body.processes as Array<{ name: string; restarts: number }>).find(
        (p) => p.name === name,
      )?.restarts ?? -1;
    const before = await restartsOf("stock-1");
    await shop.stack.kill("stock-1", "SIGKILL");
    await shop.stack.waitHealthy("stock-1");
    expect(await eventually(async () => (await restartsOf("stock-1")) > before)).toBe(true);
  });
});
