/**
 * For the order service's test files over HTTP (order.test.ts, checkout.test.ts): real order, stock
 * and payment services, each on its own real Redis, and the helpers those files share.
 */
import { afterAll, beforeAll, expect } from "bun:test";
import { get, post } from "../../../common/test/support/http";
import { eventually } from "../../../common/test/support/eventually";
import { startService, type RunningService } from "../../../common/test/support/service";
import { type Participants, startParticipants } from "./participants";

export let stock: RunningService;
export let payment: RunningService;
export let order: RunningService;

/**
 * Starts the services before the calling file's tests (the bindings above are set then) and stops
 * them after: call it once, at the top of a test file.
 */
export function orderServers(): void {
  let participants: Participants | undefined;
  beforeAll(async () => {
    participants = await startParticipants();
    ({ stock, payment } = participants);
    order = await startService("order", {
      redisPort: participants.orderRedis.port,
      stockUrls: [stock.url],
      paymentUrls: [payment.url],
    });
  });

  afterAll(async () => {
    await order?.stop();
    await participants?.stop();
  });
}

/** A compensation still running after this long is stuck. */
export const COMPENSATION_TIMEOUT_MS = 30_000;

export async function newItem(price: number, units: number): Promise<string> {
  const { body } = await post(`${stock.url}/item/create/${price}`);
  if (units > 0) await post(`${stock.url}/add/${body.item_id}/${units}`);
  return body.item_id;
}

export async function newUser(credit: number): Promise<string> {
  const { body } = await post(`${payment.url}/create_user`);
  if (credit > 0) await post(`${payment.url}/add_funds/${body.user_id}/${credit}`);
  return body.user_id;
}

export async function newOrder(userId: string, lines: Array<[string, number]> = []): Promise<string> {
  const { body } = await post(`${order.url}/create/${userId}`);
  for (const [item, quantity] of lines)
    expect((await post(`${order.url}/addItem/${body.order_id}/${item}/${quantity}`)).status).toBe(200);
  return body.order_id;
}

export const stockOf = async (id: string): Promise<number> => (await get(`${stock.url}/find/${id}`)).body.stock;
export const creditOf = async (id: string): Promise<number> =>
  (await get(`${payment.url}/find_user/${id}`)).body.credit;
export const find = async (id: string) => (await get(`${order.url}/find/${id}`)).body;
export const checkout = (id: string) => post(`${order.url}/checkout/${id}`);
/** Compensations may still be running when the 409 goes out; they finish shortly after. */
export const stockBecomes = (id: string, units: number) =>
  eventually(async () => (await stockOf(id)) === units, COMPENSATION_TIMEOUT_MS);
