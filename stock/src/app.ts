/** Stock routes: validation and HTTP shapes only; the rules live in stock.ts. */
import { batchInitCount, createApp, entityId, nonNegativeInteger, validJson, validParams } from "@checkout/common/http";
import { answerSteps, internalOnly, STEPS_PATH, stepsBody, stockStep } from "@checkout/common/internal";
import { z } from "zod";
import type { StockService } from "./stock";

const itemId = z.object({ item_id: entityId("item_id") });
const itemAmount = z.object({ item_id: entityId("item_id"), amount: nonNegativeInteger("amount") });

export function stockApp(stock: StockService, internalSecret: string) {
  const app = createApp("stock");

  app.post("/item/create/:price", validParams(z.object({ price: nonNegativeInteger("price") })), async (c) =>
    c.json({ item_id: await stock.create(c.req.valid("param").price) }),
  );

  app.get("/find/:item_id", validParams(itemId), async (c) => {
    const item = await stock.find(c.req.valid("param").item_id);
    return c.json({ stock: item.stock, price: item.price });
  });

  app.post("/add/:item_id/:amount", validParams(itemAmount), async (c) => {
    const { item_id, amount } = c.req.valid("param");
    return c.json({ item_id, stock: (await stock.add(item_id, amount)).stock });
  });

  app.post("/subtract/:item_id/:amount", validParams(itemAmount), async (c) => {
    const { item_id, amount } = c.req.valid("param");
    return c.json({ item_id, stock: (await stock.subtract(item_id, amount)).stock });
  });

  app.post(
    "/batch_init/:n/:starting_stock/:item_price",
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
