/**
 * uniform: the API's stress shape without the faults. Many items and users with stock and credit to
 * spare, random two-item orders from orders batch_init; every checkout should succeed.
 */
import { BATCH_INIT_TIMEOUT_MS, type Api } from "../client";
import type { ShapeResult } from "../report";
import { batchInitBody } from "../schemas";
import { readCredit, readOrders, readStock, touchedBy } from "../state";
import { checkInvariants, withExpectations, type InvariantReport } from "../verify";
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
  type Checkouts,
  type PreparedShape,
  type ShapeContext,
} from "./measure";

export const UNIFORM = {
  items: 100_000,
  users: 100_000,
  startingStock: 1_000_000,
  startingCredit: 1_000_000,
  itemPrice: 1,
} as const;

export async function runUniform(ctx: ShapeContext): Promise<ShapeResult> {
  return measureAlone(await prepareUniform(ctx), ctx);
}

/** Items, users and orders through batch_init; the orders are then checked out in random order. */
export async function prepareUniform(ctx: ShapeContext): Promise<PreparedShape> {
  const what = `[uniform] batch_init of ${UNIFORM.items} items, ${UNIFORM.users} users, ${ctx.orders} orders`;
  const { api } = await prepareThroughApi(ctx.baseUrl, (api) =>
    timed(ctx.log, what, async () => {
      await api.post(
        `/stock/batch_init/${UNIFORM.items}/${UNIFORM.startingStock}/${UNIFORM.itemPrice}`,
        batchInitBody,
        BATCH_INIT_TIMEOUT_MS,
      );
      await api.post(
        `/payment/batch_init/${UNIFORM.users}/${UNIFORM.startingCredit}`,
        batchInitBody,
        BATCH_INIT_TIMEOUT_MS,
      );
      await api.post(
        `/orders/batch_init/${ctx.orders}/${UNIFORM.items}/${UNIFORM.users}/${UNIFORM.itemPrice}`,
        batchInitBody,
        BATCH_INIT_TIMEOUT_MS,
      );
    }),
  );
  const windows = checkoutWindows("uniform", ctx.baseUrl, shuffled(batchIds(ctx.orders)), ctx.clients, {
    signal: ctx.signal,
  });
  return preparedShape("uniform", windows, api, async () => {
    const checkouts = windows.result();
    const notes = await settleIfUndecided(checkouts.load, ctx.log);
    const invariants = await timed(ctx.log, `[uniform] verifying ${checkouts.sentOrderIds.length} orders`, () =>
      verify(api, checkouts),
    );
    return shapeResult("uniform", ctx.clients, ctx.seconds, checkouts.load, invariants, notes);
  });
}

/**
 * Only what the run touched is read back: the orders it sent, their items and their users. An order
 * it never sent that got paid anyway still shows, as stock or credit missing from those.
 */
async function verify(api: Api, { load, answers, sentOrderIds }: Checkouts): Promise<InvariantReport> {
  const orders = await readOrders(api, sentOrderIds);
  const { itemIds, userIds } = touchedBy(orders);
  const invariants = checkInvariants({
    initialStock: new Map(itemIds.map((id) => [id, UNIFORM.startingStock])),
    currentStock: await readStock(api, itemIds),
    initialCredit: new Map(userIds.map((id) => [id, UNIFORM.startingCredit])),
    currentCredit: await readCredit(api, userIds),
    orders,
    answers,
  });
  const refused = load.counts["4xx"];
  return withExpectations(
    invariants,
    refused === 0 ? [] : [`${refused} checkouts were refused although every item and user has plenty`],
  );
}
