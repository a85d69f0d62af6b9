/**
 * Shopping through the gateway of one real stack (two replicas of every service, nginx in front),
 * as API.md describes it: checkouts with their refusals, and one order under concurrent calls.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { errorBody, post } from "../../../common/test/support/http";
import { untilQuiescent } from "../support/quiescence";
import { gatewayClient } from "../support/gateway-client";
import { startTestStack, TEST_STACK_START_TIMEOUT_MS, type TestStack } from "../support/test-stack";

/** A whole stack on a shared 2-core machine: generous, so that load elsewhere never fails a test by time alone. */
setDefaultTimeout(120_000);

let shop: TestStack;

beforeAll(async () => {
  shop = await startTestStack();
}, TEST_STACK_START_TIMEOUT_MS);

afterAll(async () => {
  await shop?.stop();
});

const { url, ok, newItem, newUser, newOrder, stockOf, creditOf, orderOf, checkout, untilStock, unknownId } =
  gatewayClient(() => shop);

// ---- shopping ------------------------------------------------------------------------------------

describe("a shopping flow", () => {
  test("a checkout takes the stock of every item and charges the order's total", async () => {
    const [a, b] = [await newItem(5, 10), await newItem(3, 10)];
    const userId = await newUser(100);
    const orderId = await newOrder(userId, [
      [a, 2],
      [b, 1],
    ]);

    expect(await checkout(orderId)).toEqual({ status: 200, body: { order_id: orderId, paid: true } });
    expect([await stockOf(a), await stockOf(b), await creditOf(userId)]).toEqual([8, 9, 87]);
    expect((await orderOf(orderId)).paid).toBe(true);
  });

  test("the quantities of one item added twice are taken together", async () => {
    const itemId = await newItem(1, 5);
    const userId = await newUser(5);
    const orderId = await newOrder(userId, [
      [itemId, 2],
      [itemId, 3],
    ]);

    expect((await checkout(orderId)).status).toBe(200);
    expect(await stockOf(itemId)).toBe(0);
    expect(await creditOf(userId)).toBe(0);
  });

  test("a checkout refused for lack of credit answers 409, and the stock and credit end as they were", async () => {
    const [a, b] = [await newItem(5, 10), await newItem(3, 10)];
    const userId = await newUser(12);
    const orderId = await newOrder(userId, [
      [a, 2],
      [b, 1],
    ]);

    expect(await checkout(orderId)).toEqual({ status: 409, body: errorBody("insufficient_credit") });
    await untilStock(a, 10);
    await untilStock(b, 10);
    expect(await creditOf(userId)).toBe(12);
    expect((await orderOf(orderId)).paid).toBe(false);
  });

  test("a checkout refused for lack of stock answers 409, and no item's stock nor the credit changes", async () => {
    const [plenty, scarce] = [await newItem(5, 10), await newItem(3, 1)];
    const userId = await newUser(100);
    const orderId = await newOrder(userId, [
      [plenty, 1],
      [scarce, 2],
    ]);

    expect(await checkout(orderId)).toEqual({ status: 409, body: errorBody("insufficient_stock") });
    await untilStock(plenty, 10);
    await untilStock(scarce, 1);
    expect(await creditOf(userId)).toBe(100);
    expect((await orderOf(orderId)).paid).toBe(false);
  });

  test("a checkout for a user who does not exist answers 409 and gives the stock back", async () => {
    const itemId = await newItem(5, 10);
    const orderId = await newOrder(unknownId(), [[itemId, 3]]);

    expect(await checkout(orderId)).toEqual({ status: 409, body: errorBody("unknown_user") });
    await untilStock(itemId, 10);
    expect((await orderOf(orderId)).paid).toBe(false);
  });

  test("an order refused for lack of credit checks out once funds are added", async () => {
    const itemId = await newItem(5, 10);
    const userId = await newUser(4);
    const orderId = await newOrder(userId, [[itemId, 1]]);
    expect((await checkout(orderId)).status).toBe(409);
    await untilStock(itemId, 10);

    await ok("POST", `/payment/add_funds/${userId}/1`);
    expect(await checkout(orderId)).toEqual({ status: 200, body: { order_id: orderId, paid: true } });
    expect([await stockOf(itemId), await creditOf(userId)]).toEqual([9, 0]);
  });

  test("checking out a paid order again answers 200 and charges nothing more", async () => {
    const itemId = await newItem(5, 10);
    const userId = await newUser(100);
    const orderId = await newOrder(userId, [[itemId, 2]]);
    expect((await checkout(orderId)).status).toBe(200);

    expect(await checkout(orderId)).toEqual({ status: 200, body: { order_id: orderId, paid: true } });
    expect([await stockOf(itemId), await creditOf(userId)]).toEqual([8, 90]);
  });

  test("adding an item to a paid order answers 409 and leaves the order as it was", async () => {
    const itemId = await newItem(5, 10);
    const userId = await newUser(100);
    const orderId = await newOrder(userId, [[itemId, 1]]);
    expect((await checkout(orderId)).status).toBe(200);
    const paid = await orderOf(orderId);

    expect(await post(url(`/orders/addItem/${orderId}/${itemId}/1`))).toEqual({
      status: 409,
      body: errorBody("order_already_paid"),
    });
    expect(await orderOf(orderId)).toEqual(paid);
  });
});

// ---- concurrency -----------------------------------------------------------------------------------

describe("one order under concurrent calls", () => {
  const DUPLICATES = 30;
  const ADDERS = 100;

  test(`${DUPLICATES} concurrent checkouts of one order all answer 200, and it is charged and its stock taken once`, async () => {
    const itemId = await newItem(5, 10);
    const userId = await newUser(100);
    const orderId = await newOrder(userId, [[itemId, 2]]);

    const answers = await Promise.all(Array.from({ length: DUPLICATES }, () => checkout(orderId)));
    expect(answers.map((a) => a.status)).toEqual(Array(DUPLICATES).fill(200));
    await untilQuiescent(shop);
    expect([await stockOf(itemId), await creditOf(userId)]).toEqual([8, 90]);
    expect((await orderOf(orderId)).paid).toBe(true);
  });

  test(`${DUPLICATES} concurrent checkouts of an order its user cannot pay all answer 409, and nothing is taken`, async () => {
    const itemId = await newItem(5, 10);
    const userId = await newUser(9);
    const orderId = await newOrder(userId, [[itemId, 2]]);

    const answers = await Promise.all(Array.from({ length: DUPLICATES }, () => checkout(orderId)));
    expect(answers.map((a) => a.status)).toEqual(Array(DUPLICATES).fill(409));
    await untilQuiescent(shop);
    expect([await stockOf(itemId), await creditOf(userId)]).toEqual([10, 9]);
    expect((await orderOf(orderId)).paid).toBe(false);
  });

  test(`${ADDERS} concurrent addItem calls on one order are all counted, and the total is exact`, async () => {
    const PRICE = 3;
    const itemId = await newItem(PRICE);
    const orderId = await newOrder(await newUser());
    const quantities = Array.from({ length: ADDERS }, (_, i) => i + 1);

    const answers = await Promise.all(quantities.map((q) => post(url(`/orders/addItem/${orderId}/${itemId}/${q}`))));
    expect(answers.filter((a) => a.status !== 200)).toEqual([]);
    const expectedTotal = PRICE * quantities.reduce((a, b) => a + b, 0);
    const order = await orderOf(orderId);
    expect(order.total_cost).toBe(expectedTotal);
    expect(order.items.map(([, q]: [string, number]) => q).sort((a: number, b: number) => a - b)).toEqual(quantities);
    // Each call saw the order with its own line added to those before it: every answered total is different.
    expect(new Set(answers.map((a) => a.body.total_cost)).size).toBe(ADDERS);
    expect(Math.max(...answers.map((a) => a.body.total_cost))).toBe(expectedTotal);
  });
});
