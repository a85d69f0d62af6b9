/** Stock routes: validation and HTTP shapes only; the rules live in stock.ts. */
import {
  batchInitCount,
  createApp,
  documented,
  entityId,
  messageBody,
  nonNegativeInteger,
  validJson,
  validParams,
} from "@checkout/common/http";
import { answerSteps, internalOnly, STEPS_PATH, stepsBody, stockStep } from "@checkout/common/internal";
import { z } from "zod";
import type { StockService } from "./stock";

const itemId = z.object({ item_id: entityId("item_id") });
const itemAmount = z.object({ item_id: entityId("item_id"), amount: nonNegativeInteger("amount") });
const itemStock = z.object({ item_id: z.string(), stock: z.number().int() });

export function stockApp(stock: StockService, internalSecret: string) {
  const app = createApp("stock");

  app.post(
    "/item/create/:price",
    documented("Creates an item at this price, with no stock", z.object({ item_id: z.string() })),
    validParams(z.object({ price: nonNegativeInteger("price") })),
    async (c) => c.json({ item_id: await stock.create(c.req.valid("param").price) }),
  );

  app.get(
    "/find/:item_id",
    documented(
      "An item's stock and price",
      z.object({ stock: z.number().int(), price: z.number().int() }),
      "404 unknown_item",
    ),
    validParams(itemId),
    async (c) => {
      const item = await stock.find(c.req.valid("param").item_id);
      return c.json({ stock: item.stock, price: item.price });
    },
  );

  app.post(
    "/add/:item_id/:amount",
    documented("Adds units to an item's stock", itemStock, "404 unknown_item"),
    validParams(itemAmount),
    async (c) => {
      const { item_id, amount } = c.req.valid("param");
      return c.json({ item_id, stock: (await stock.add(item_id, amount)).stock });
    },
  );

  app.post(
    "/subtract/:item_id/:amount",
    documented("Takes units from an item's stock", itemStock, "404 unknown_item; 409 insufficient_stock"),
    validParams(itemAmount),
    async (c) => {
      const { item_id, amount } = c.req.valid("param");
      return c.json({ item_id, stock: (await stock.subtract(item_id, amount)).stock });
    },
  );

  app.post(
    "/batch_init/:n/:starting_stock/:item_price",
    documented('Creates (or resets) items "0" to "n-1", each with this stock and price', messageBody),
    validParams(
      z.object({
        n: batchInitCount(),
        starting_stock: nonNegativeInteger("starting_stock"),
        item_price: nonNegativeInteger("item_price"),
      }),
    ),
    async (c) => {
      const { n, starting_stock, item_price } = c.req.valid("param");
      await stock.batchInit(n, starting_stock, item_price);
      return c.json({ msg: `${n} items created with stock ${starting_stock} and price ${item_price}` });
    },
  );

  app.use("/internal/*", internalOnly(internalSecret));

  app.post(STEPS_PATH, validJson(stepsBody), (c) =>
    answerSteps(c, c.req.valid("json").steps, stockStep, (step) =>
      step.action === "take" ? stock.take(step.op_id, step.items) : stock.restore(step.op_id, step.items),
    ),
  );

  return app;
}
