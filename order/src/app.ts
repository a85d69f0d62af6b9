/**
 * Order routes: validation and HTTP shapes, and the calls that join the parts. addItem asks stock for
 * the item's price before orders.ts adds it; checkout runs the saga (saga.ts) and counts its outcome.
 * The rules live in orders.ts.
 */
import { AppError, notFound } from "@checkout/common/errors";
import {
  batchInitCount,
  createApp,
  documented,
  entityId,
  messageBody,
  nonNegativeInteger,
  validParams,
} from "@checkout/common/http";
import { internalOnly } from "@checkout/common/internal";
import { metrics } from "@checkout/common/metrics";
import { z } from "zod";
import type { OrderStore } from "./orders";
import type { Peers } from "./peers";
import type { Checkout } from "./saga";
import { sagasInFlight } from "./sagas-in-flight";
import { statsBody, type StatsSource } from "./stats";

const orderId = z.object({ order_id: entityId("order_id") });

export function orderApp(
  orders: OrderStore,
  checkout: Checkout,
  peers: Peers,
  stats: StatsSource,
  internalSecret: string,
) {
  const app = createApp("order");

  app.post(
    "/create/:user_id",
    documented("Creates an empty order for a user", z.object({ order_id: z.string() })),
    validParams(z.object({ user_id: entityId("user_id") })),
    async (c) => c.json({ order_id: await orders.create(c.req.valid("param").user_id) }),
  );

  app.get(
    "/find/:order_id",
    documented(
      "An order: whether it is paid, its lines [item_id, quantity], its user and its total",
      z.object({
        order_id: z.string(),
        paid: z.boolean(),
        items: z.array(z.tuple([z.string(), z.number().int()])),
        user_id: z.string(),
        total_cost: z.number().int(),
      }),
      "404 unknown_order",
    ),
    validParams(orderId),
    async (c) => {
      const { order_id } = c.req.valid("param");
      const order = await orders.find(order_id);
      return c.json({
        order_id,
        paid: order.paid,
        items: order.items,
        user_id: order.userId,
        total_cost: order.totalCost,
      });
    },
  );

  app.post(
    "/addItem/:order_id/:item_id/:quantity",
    documented(
      "Adds quantity units of an item to an order, at the item's price in stock",
      z.object({ order_id: z.string(), total_cost: z.number().int() }),
      "404 unknown_order or unknown_item; 409 order_already_paid or checkout_in_progress",
    ),
    validParams(
      z.object({
        order_id: entityId("order_id"),
        item_id: entityId("item_id"),
        quantity: nonNegativeInteger("quantity", 1),
      }),
    ),
    async (c) => {
      const { order_id, item_id, quantity } = c.req.valid("param");
      // Cheap refusals first: no call to stock for an order that does not exist or cannot change.
      await orders.find(order_id);
      const item = await peers.stock.get(`/find/${item_id}`);
      if (item.kind === "refused")
        throw item.error.status === 404 ? notFound("unknown_item", `item ${item_id} does not exist`) : item.error;
      if (item.kind === "unknown")
        throw new AppError(503, "peer_unavailable", `could not look up item ${item_id}: ${item.reason}`);
      const order = await orders.addItem(order_id, item_id, quantity, Number(item.body.price));
      return c.json({ order_id, total_cost: order.totalCost });
    },
  );

  app.post(
    "/checkout/:order_id",
    documented(
      "Pays an order: takes its items' stock and charges its user, or undoes both. 200 only once durably paid; 409 once its failure is durably decided",
      z.object({ order_id: z.string(), paid: z.literal(true) }),
      "404 unknown_order; 409 insufficient_stock, insufficient_credit, unknown_item, unknown_user, checkout_in_progress or peer_unavailable",
    ),
    validParams(orderId),
    async (c) => {
      const { order_id } = c.req.valid("param");
      metrics.checkoutsInFlight.inc();
      const outcome = await checkout.checkout(order_id).finally(() => metrics.checkoutsInFlight.dec());
      metrics.checkouts.inc(
        outcome.paid ? { outcome: "paid", reason: "" } : { outcome: "refused", reason: outcome.error.code },
      );
      if (!outcome.paid) throw outcome.error;
      return c.json({ order_id, paid: true });
    },
  );

  app.post(
    "/batch_init/:n/:n_items/:n_users/:item_price",
    documented('Creates (or resets) orders "0" to "n-1", each of two random items for a random user', messageBody),
    validParams(
      z.object({
        n: batchInitCount(),
        n_items: nonNegativeInteger("n_items", 1),
        n_users: nonNegativeInteger("n_users", 1),
        item_price: nonNegativeInteger("item_price").pipe(
          z.number().max(Math.floor(Number.MAX_SAFE_INTEGER / 2), "item_price is too large"),
        ),
      }),
    ),
    async (c) => {
      const { n, n_items, n_users, item_price } = c.req.valid("param");
      await orders.batchInit(n, n_items, n_users, item_price);
      return c.json({ msg: `${n} orders created` });
    },
  );

  app.get(
    "/stats",
    documented("The dashboard's live figures: aggregate and read-only, nothing per order or per user", statsBody),
    async (c) => c.json(await stats.current()),
  );

  app.use("/internal/*", internalOnly(internalSecret));

  app.get("/internal/sagas", async (c) => {
    const found = await orders.findMany(await orders.unfinishedSagas());
    return c.json(sagasInFlight(found, Date.now(), checkout.lastStepError));
  });

  return app;
}
