/** Order routes: validation and HTTP shapes only; the rules live in orders.ts, checkout in saga.ts. */
import { AppError, notFound } from "@checkout/common/errors";
import { batchInitCount, createApp, entityId, nonNegativeInteger, validParams } from "@checkout/common/http";
import { internalOnly } from "@checkout/common/internal";
import { metrics } from "@checkout/common/metrics";
import { z } from "zod";
import type { OrderStore } from "./orders";
import type { Peers } from "./peers";
import type { Checkout } from "./saga";
import { sagasInFlight } from "./sagas-in-flight";
import type { StatsSource } from "./stats";

const orderId = z.object({ order_id: entityId("order_id") });

export function orderApp(orders: OrderStore, checkout: Checkout, peers: Peers, stats: StatsSource, internalSecret: string) {
  const app = createApp("order");

  app.post("/create/:user_id", validParams(z.object({ user_id: entityId("user_id") })), async (c) =>
    c.json({ order_id: await orders.create(c.req.valid("param").user_id) }),
  );

  app.get("/find/:order_id", validParams(orderId), async (c) => {
    const { order_id } = c.req.valid("param");
    const order = await orders.find(order_id);
    return c.json({ order_id, paid: order.paid, items: order.items, user_id: order.userId, total_cost: order.totalCost });
  });

  app.post(
    "/addItem/:order_id/:item_id/:quantity",
    validParams(z.object({ order_id: entityId("order_id"), item_id: entityId("item_id"), quantity: nonNegativeInteger("quantity", 1) })),
    async (c) => {
      const { order_id, item_id, quantity } = c.req.valid("param");
      // Cheap refusals first: no call to stock for an order that does not exist or cannot change.
      await orders.find(order_id);
      const item = await peers.stock.get(`/find/${item_id}`);
      if (item.kind === "refused") throw item.error.status === 404 ? notFound("unknown_item", `item ${item_id} does not exist`) : item.error;
      if (item.kind === "unknown") throw new AppError(503, "peer_unavailable", `could not look up item ${item_id}: ${item.reason}`);
      const order = await orders.addItem(order_id, item_id, quantity, Number(item.body.price));
      return c.json({ order_id, total_cost: order.totalCost });
    },
  );

  app.post("/checkout/:order_id", validParams(orderId), async (c) => {
    const { order_id } = c.req.valid("param");
    metrics.checkoutsInFlight.inc();
    const outcome = await checkout.checkout(order_id).finally(() => metrics.checkoutsInFlight.dec());
    metrics.checkouts.inc(outcome.paid ? { outcome: "paid", reason: "" } : { outcome: "refused", reason: outcome.error.code });
    if (!outcome.paid) throw outcome.error;
    return c.json({ order_id, paid: true });
  });

  app.post(
    "/batch_init/:n/:n_items/:n_users/:item_price",
    validParams(
      z.object({
        n: batchInitCount(),
        n_items: nonNegativeInteger("n_items", 1),
        n_users: nonNegativeInteger("n_users", 1),
        item_price: nonNegativeInteger("item_price").pipe(z.number().max(Math.floor(Number.MAX_SAFE_INTEGER / 2), "item_price is too large")),
      }),
    ),
    async (c) => {
      const { n, n_items, n_users, item_price } = c.req.valid("param");
      await orders.batchInit(n, n_items, n_users, item_price);
      return c.json({ msg: `${n} orders created` });
    },
  );

  app.get("/stats", async (c) => c.json(await stats.current()));

  app.use("/internal/*", internalOnly(internalSecret));

  app.get("/internal/sagas", async (c) => {
    const found = await orders.findMany(await orders.unfinishedSagas());
    return c.json(sagasInFlight(found, Date.now(), checkout.lastStepError));
  });

  return app;
}
