/**
 * hot: the API's consistency shape. One item with stock 100 at price 1, 1000 users with credit 1,
 * one single-unit order each, all 1000 checkouts in flight at once. Exactly 100 may succeed.
 */
import { forEachLimited, SIDE_CONCURRENCY, type Api } from "../client";
import type { ShapeResult } from "../report";
import {
  addedItemBody,
  createdItemBody,
  createdOrderBody,
  createdUserBody,
  creditChangeBody,
  stockChangeBody,
} from "../schemas";
import { readCredit, readOrders, readStock } from "../state";
import { checkInvariants, withExpectations, type InvariantReport } from "../verify";
import {
  checkoutWindows,
  measureAlone,
  preparedShape,
  prepareThroughApi,
  settleIfUndecided,
  shapeResult,
  timed,
  type Checkouts,
  type PreparedShape,
  type ShapeContext,
} from "./measure";

export const HOT = {
  stock: 100,
  itemPrice: 1,
  users: 1_000,
  creditPerUser: 1,
  /** Every checkout is in flight at once: the point is contention, not a client count. */
  concurrency: 1_000,
} as const;

export type HotData = {
  itemId: string;
  initialItemStock: number;
  initialCredit: Map<string, number>;
  orderIds: string[];
};

/** No warm-up: every order is checked out once, all of them at once, and a warm-up would spend them. */
export async function runHot(ctx: ShapeContext): Promise<ShapeResult> {
  return measureAlone(await prepareHot(ctx), { ...ctx, warmupSeconds: 0 });
}

export async function prepareHot(ctx: ShapeContext): Promise<PreparedShape> {
  const what = `[hot] creating 1 item (stock ${HOT.stock}), ${HOT.users} users and their orders`;
  const { api, data } = await prepareThroughApi(ctx.baseUrl, (api) => timed(ctx.log, what, () => createHotData(api)));
  const windows = checkoutWindows("hot", ctx.baseUrl, data.orderIds, HOT.concurrency, { signal: ctx.signal });
  return preparedShape("hot", windows, api, async () => {
    const checkouts = windows.result();
    const notes = [
      `all ${checkouts.load.answered} of ${HOT.users} checkouts answered in ${(checkouts.load.elapsedMs / 1000).toFixed(2)} s`,
    ];
    notes.push(...(await settleIfUndecided(checkouts.load, ctx.log)));
    const invariants = await timed(ctx.log, "[hot] verifying", () => verify(api, data, checkouts));
    return shapeResult("hot", HOT.concurrency, ctx.seconds, checkouts.load, invariants, notes);
  });
}

/** Through the public API, one entity at a time: batch_init cannot make one item and its buyers. */
export async function createHotData(api: Api): Promise<HotData> {
  const { item_id: itemId } = await api.post(`/stock/item/create/${HOT.itemPrice}`, createdItemBody);
  const { stock: initialItemStock } = await api.post(`/stock/add/${itemId}/${HOT.stock}`, stockChangeBody);
  const initialCredit = new Map<string, number>();
  const orderIds = new Array<string>(HOT.users);
  await forEachLimited(orderIds, SIDE_CONCURRENCY, async (_, i) => {
    const { user_id: userId } = await api.post("/payment/create_user", createdUserBody);
    const { credit } = await api.post(`/payment/add_funds/${userId}/${HOT.creditPerUser}`, creditChangeBody);
    initialCredit.set(userId, credit);
    const { order_id: orderId } = await api.post(`/orders/create/${userId}`, createdOrderBody);
    await api.post(`/orders/addItem/${orderId}/${itemId}/1`, addedItemBody);
    orderIds[i] = orderId;
  });
  return { itemId, initialItemStock, initialCredit, orderIds };
}

async function verify(api: Api, data: HotData, { load, answers }: Checkouts): Promise<InvariantReport> {
  const currentStock = await readStock(api, [data.itemId]);
  const currentCredit = await readCredit(api, [...data.initialCredit.keys()]);
  const invariants = checkInvariants({
    initialStock: new Map([[data.itemId, data.initialItemStock]]),
    currentStock,
    initialCredit: data.initialCredit,
    currentCredit,
    orders: await readOrders(api, data.orderIds),
    answers,
  });

  const expectations: string[] = [];
  const succeeded = load.counts["2xx"];
  const refused = load.counts["4xx"];
  const expectedRefusals = HOT.users - HOT.stock;
  const expectedDrop = HOT.stock * HOT.itemPrice;
  if (succeeded !== HOT.stock) expectations.push(`${succeeded} checkouts succeeded, expected exactly ${HOT.stock}`);
  if (refused !== expectedRefusals)
    expectations.push(`${refused} checkouts were refused, expected exactly ${expectedRefusals}`);
  const stockLeft = currentStock.get(data.itemId);
  if (stockLeft !== 0) expectations.push(`stock left is ${stockLeft}, expected 0`);
  const creditDrop = sumOf(data.initialCredit.values()) - sumOf(currentCredit.values());
  if (creditDrop !== expectedDrop)
    expectations.push(`total credit dropped by ${creditDrop}, expected exactly ${expectedDrop}`);
  return withExpectations(invariants, expectations);
}

function sumOf(values: Iterable<number>): number {
  let total = 0;
  for (const v of values) total += v;
  return total;
}
