/**
 * Order routes: validation and HTTP shapes only. What each route does is in handlers.ts, the order's
 * rules in order-rules.ts, checkout in saga.ts.
 */
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
import { z } from "zod";
import type { OrderHandlers } from "./handlers";
import { statsBody } from "./stats";

const orderId = z.object({ order_id: entityId("order_id") });

export function orderApp(handlers: OrderHandlers, internalSecret: string) {
  const app = createApp("order");

  app.post(
    "/create/:user_id",
    documented("Creates an empty order for a user", z.object({ order_id: z.string() })),
    validParams(z.object({ user_id: entityId("user_id") })),
    async (c) => c.json({ order_id: await handlers.create(c.req.valid("param").user_id) }),
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
      const order = await handlers.find(order_id);
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
      const order = await handlers.addItem(order_id, item_id, quantity);
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
      await handlers.checkout(order_id);
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
      await handlers.batchInit(n, n_items, n_users, item_price);
      return c.json({ msg: `${n} orders created` });
    },
  );

  app.get(
    "/stats",
    documented("The dashboard's live figures: aggregate and read-only, nothing per order or per user", statsBody),
    async (c) => c.json(await handlers.stats()),
  );

  app.use("/internal/*", internalOnly(internalSecret));

  app.get("/internal/sagas", async (c) => c.json(await handlers.sagasInFlight()));

  return app;
}
