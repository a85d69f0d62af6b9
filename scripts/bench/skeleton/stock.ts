/** Skeleton stock service: a subtraction is one DECRBY, with no check that the stock suffices. */
import { json, serveSkeleton } from "./shared";

serveSkeleton("stock", (_config, redis) => ({
  "/subtract/:item_id/:amount": {
    POST: async (req) => {
      const { item_id, amount } = req.params as { item_id: string; amount: string };
      const stock = await redis.decrby(`stock:${item_id}`, Number(amount));
      return json({ item_id, stock });
    },
  },
}));
