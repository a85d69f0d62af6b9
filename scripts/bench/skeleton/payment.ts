/** Skeleton payment service: a payment is one DECRBY, with no check that the credit suffices. */
import { json, serveSkeleton } from "./shared";

serveSkeleton("payment", (_config, redis) => ({
  "/pay/:user_id/:amount": {
    POST: async (req) => {
      const { user_id, amount } = req.params as { user_id: string; amount: string };
      const credit = await redis.decrby(`credit:${user_id}`, Number(amount));
      return json({ user_id, credit });
    },
  },
}));
