/**
 * mixed: refusals among successes. Random two-item orders (orders batch_init) over a small
 * catalogue in which a share of the items is scarce and a share of the users is too poor to pay
 * for any order, so that some checkouts are refused for stock, some for credit, and the rest succeed.
 */
import { BATCH_INIT_TIMEOUT_MS, forEachLimited, SIDE_CONCURRENCY, type Api } from "../client";
import type { ShapeResult } from "../report";
import { batchInitBody, creditChangeBody, stockChangeBody } from "../schemas";
import { readCredit, readOrders, readStock } from "../state";
import { checkInvariants } from "../verify";
import {
  batchIds,
  checkoutWindows,
  measureAlone,
  preparedShape,
  prepareThroughApi,
  settleIfUndecided,
  shapeResult,
  shuffled,
  timed,
  type PreparedShape,
  type ShapeContext,
} from "./measure";

export const MIXED = {
  items: 1_000,
  users: 1_000,
  itemPrice: 1,
  plentifulStock: 1_000_000,
  plentifulCredit: 1_000_000,
  /**
   * Items "0" … "scarceItems-1" keep a single unit: about a fifth of the orders hold one, the first
   * few race for those units, and every later one is refused for stock however slow the system is.
   */
  scarceItems: 100,
  scarceStock: 1,
  /** Users "0" … "poorUsers-1" keep credit 1, less than any order costs (two items at price 1). */
  poorUsers: 100,
  poorCredit: 1,
} as const;

export async function runMixed(ctx: ShapeContext): Promise<ShapeResult> {
  return measureAlone(await prepareMixed(ctx), ctx);
}

export async function prepareMixed(ctx: ShapeContext): Promise<PreparedShape> {
  const itemIds = batchIds(MIXED.items);
  const userIds = batchIds(MIXED.users);
  const what = `[mixed] batch_init of ${MIXED.items} items (${MIXED.scarceItems} scarce), ${MIXED.users} users (${MIXED.poorUsers} poor), ${ctx.orders} orders`;
  const { api, data: initial } = await prepareThroughApi(ctx.baseUrl, async (api) => {
    await timed(ctx.log, what, () => prepare(api, ctx.orders));
    // The catalogue is small, so its state before the run is read rather than assumed.
    return { stock: await readStock(api, itemIds), credit: await readCredit(api, userIds) };
  });
  const windows = checkoutWindows("mixed", ctx.baseUrl, shuffled(batchIds(ctx.orders)), ctx.clients, {
    signal: ctx.signal,
  });
  return preparedShape("mixed", windows, api, async () => {
    const { load, answers, sentOrderIds } = windows.result();
    const notes = await settleIfUndecided(load, ctx.log);
    const invariants = await timed(ctx.log, `[mixed] verifying ${sentOrderIds.length} orders`, async () =>
      checkInvariants({
        initialStock: initial.stock,
        currentStock: await readStock(api, itemIds),
        initialCredit: initial.credit,
        currentCredit: await readCredit(api, userIds),
        orders: await readOrders(api, sentOrderIds),
        answers,
      }),
    );
    const sent = Math.max(load.sent, 1);
    const percent = (n: number) => `${((n / sent) * 100).toFixed(1)} %`;
    notes.push(`${percent(load.counts["2xx"])} succeeded, ${percent(load.counts["4xx"])} refused`);
    return shapeResult("mixed", ctx.clients, ctx.seconds, load, invariants, notes);
  });
}

/** batch_init makes everything plentiful; the scarce items and poor users are then cut down through the API. */
async function prepare(api: Api, orders: number): Promise<void> {
  await api.post(
    `/stock/batch_init/${MIXED.items}/${MIXED.plentifulStock}/${MIXED.itemPrice}`,
    batchInitBody,
    BATCH_INIT_TIMEOUT_MS,
  );
  await api.post(`/payment/batch_init/${MIXED.users}/${MIXED.plentifulCredit}`, batchInitBody, BATCH_INIT_TIMEOUT_MS);
  await forEachLimited(batchIds(MIXED.scarceItems), SIDE_CONCURRENCY, async (id) => {
    await api.post(`/stock/subtract/${id}/${MIXED.plentifulStock - MIXED.scarceStock}`, stockChangeBody);
  });
  await forEachLimited(batchIds(MIXED.poorUsers), SIDE_CONCURRENCY, async (id) => {
    await api.post(`/payment/pay/${id}/${MIXED.plentifulCredit - MIXED.poorCredit}`, creditChangeBody);
  });
  await api.post(
    `/orders/batch_init/${orders}/${MIXED.items}/${MIXED.users}/${MIXED.itemPrice}`,
    batchInitBody,
    BATCH_INIT_TIMEOUT_MS,
  );
}
