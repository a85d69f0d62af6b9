/** The 200 bodies of the public API (API.md) that the benchmark reads. Fields it does not use are not checked. */
import { z } from "zod";

const count = z.number().int();

export const batchInitBody = z.object({ msg: z.string() });
export const createdItemBody = z.object({ item_id: z.string() });
export const stockChangeBody = z.object({ stock: count });
export const itemBody = z.object({ stock: count, price: count });
export const createdUserBody = z.object({ user_id: z.string() });
export const creditChangeBody = z.object({ credit: count });
export const userBody = z.object({ credit: count });
export const createdOrderBody = z.object({ order_id: z.string() });
export const addedItemBody = z.object({ total_cost: count });
export const orderBody = z.object({
  paid: z.boolean(),
  items: z.array(z.tuple([z.string(), count])),
  user_id: z.string(),
  total_cost: count,
});
