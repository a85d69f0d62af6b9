/**
 * The public API (API.md) as an end-to-end test calls it through a test stack's gateway: plain
 * calls, entities made in one call, reads of stock, credit and orders, and a check that requests
 * changed nothing in any service's Redis.
 *
 *   let shop: TestStack;
 *   beforeAll(async () => { shop = await startTestStack(); }, TEST_STACK_START_TIMEOUT_MS);
 *   const { ok, newItem, stockOf } = gatewayClient(() => shop);
 */
import { expect } from "bun:test";
import { SERVICES, type ServiceName } from "../../../common/src/config";
import { keys } from "../../../common/src/keyspace";
import { eventually } from "../../../common/test/support/eventually";
import { get, post, type Answer } from "../../../common/test/support/http";
import { redisState, type RedisState } from "../../../common/test/support/redis-state";
import { stateDifferences, untilQuiescent } from "./quiescence";
import type { TestStack } from "./test-stack";

/** A refused checkout answers once compensation is decided; a compensation still running after this long is stuck. */
const COMPENSATION_TIMEOUT_MS = 30_000;
/** Keys that change without any request changing data: the sequence counter, log lines in transit. */
const BOOKKEEPING = new Set<string>([keys.seq, keys.logStream, keys.durableLog, keys.compactionLock]);

/** The calls, on the stack `shop()` returns (called at each call: the stack starts in a beforeAll). */
export function gatewayClient(shop: () => TestStack) {
  const url = (path: string) => `${shop().gatewayUrl}${path}`;
  const send = (method: "GET" | "POST", path: string): Promise<Answer> =>
    method === "GET" ? get(url(path)) : post(url(path));

  /** The body of a 200 answer; any other answer fails the test, naming the call. */
  async function ok(method: "GET" | "POST", path: string): Promise<any> {
    const answer = await send(method, path);
    if (answer.status !== 200)
      throw new Error(`${method} ${path} answered ${answer.status}: ${JSON.stringify(answer.body)}`);
    return answer.body;
  }

  async function newItem(price: number, stock = 0): Promise<string> {
    const { item_id } = await ok("POST", `/stock/item/create/${price}`);
    if (stock > 0) await ok("POST", `/stock/add/${item_id}/${stock}`);
    return item_id;
  }

  async function newUser(credit = 0): Promise<string> {
    const { user_id } = await ok("POST", "/payment/create_user");
    if (credit > 0) await ok("POST", `/payment/add_funds/${user_id}/${credit}`);
    return user_id;
  }

  async function newOrder(userId: string, lines: Array<[string, number]> = []): Promise<string> {
    const { order_id } = await ok("POST", `/orders/create/${userId}`);
    for (const [itemId, quantity] of lines) await ok("POST", `/orders/addItem/${order_id}/${itemId}/${quantity}`);
    return order_id;
  }

  const stockOf = async (itemId: string): Promise<number> => (await ok("GET", `/stock/find/${itemId}`)).stock;
  const creditOf = async (userId: string): Promise<number> => (await ok("GET", `/payment/find_user/${userId}`)).credit;
  const orderOf = (orderId: string) => ok("GET", `/orders/find/${orderId}`);
  const checkout = (orderId: string) => post(url(`/orders/checkout/${orderId}`));

  /** Waits until a refused checkout's compensation has restored what it took. */
  async function untilStock(itemId: string, expected: number): Promise<void> {
    await eventually(async () => (await stockOf(itemId)) === expected, COMPENSATION_TIMEOUT_MS, 20);
    expect(await stockOf(itemId)).toBe(expected);
  }

  const unknownId = () => `missing-${crypto.randomUUID()}`;

  /** Every service's whole Redis, once the stack has settled. */
  async function databases(): Promise<Record<ServiceName, RedisState>> {
    await untilQuiescent(shop());
    const states = await Promise.all(SERVICES.map((service) => redisState(shop().redis(service))));
    return Object.fromEntries(SERVICES.map((service, i) => [service, states[i]!])) as Record<ServiceName, RedisState>;
  }

  /** Runs `requests` and expects no key of any service's Redis to have changed. */
  async function expectNothingChanged(requests: () => Promise<void>): Promise<void> {
    const before = await databases();
    await requests();
    const after = await databases();
    for (const service of SERVICES) {
      expect({ service, changed: stateDifferences(before[service], after[service], BOOKKEEPING) }).toEqual({
        service,
        changed: [],
      });
    }
  }

  return {
    url,
    send,
    ok,
    newItem,
    newUser,
    newOrder,
    stockOf,
    creditOf,
    orderOf,
    checkout,
    untilStock,
    unknownId,
    expectNothingChanged,
  };
}
