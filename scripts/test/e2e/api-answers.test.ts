/**
 * The public API (API.md), to the letter, through the gateway of one real stack (two replicas of
 * every service, nginx in front): the shape of every 200 answer, and the data batch_init creates.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { errorBody, get, post } from "../../../common/test/support/http";
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

const { url, ok, newItem, newUser, newOrder, stockOf, creditOf, orderOf, checkout } = gatewayClient(() => shop);

// ---- the 200 answers ---------------------------------------------------------------------------

describe("every 200 answer has the fields and types API.md gives it", () => {
  test("POST /stock/item/create/{price} answers {item_id}; the new item has stock 0 at that price", async () => {
    const created = await ok("POST", "/stock/item/create/7");
    expect(created).toEqual({ item_id: expect.any(String) });
    expect(await ok("GET", `/stock/find/${created.item_id}`)).toEqual({ stock: 0, price: 7 });
  });

  test("POST /stock/add/{item_id}/{amount} answers {item_id, stock} with the new stock", async () => {
    const itemId = await newItem(7, 3);
    expect(await ok("POST", `/stock/add/${itemId}/4`)).toEqual({ item_id: itemId, stock: 7 });
    expect(await ok("GET", `/stock/find/${itemId}`)).toEqual({ stock: 7, price: 7 });
  });

  test("POST /stock/subtract/{item_id}/{amount} answers {item_id, stock} with the new stock", async () => {
    const itemId = await newItem(7, 10);
    expect(await ok("POST", `/stock/subtract/${itemId}/4`)).toEqual({ item_id: itemId, stock: 6 });
    expect(await stockOf(itemId)).toBe(6);
  });

  test("subtracting more than the stock answers 409 and leaves the stock as it was", async () => {
    const itemId = await newItem(7, 3);
    expect(await post(url(`/stock/subtract/${itemId}/4`))).toEqual({
      status: 409,
      body: errorBody("insufficient_stock"),
    });
    expect(await stockOf(itemId)).toBe(3);
  });

  test("POST /payment/create_user answers {user_id}; the new user has credit 0", async () => {
    const created = await ok("POST", "/payment/create_user");
    expect(created).toEqual({ user_id: expect.any(String) });
    expect(await ok("GET", `/payment/find_user/${created.user_id}`)).toEqual({ user_id: created.user_id, credit: 0 });
  });

  test("POST /payment/add_funds/{user_id}/{amount} answers {done: true, credit} with the new credit", async () => {
    const userId = await newUser(5);
    expect(await ok("POST", `/payment/add_funds/${userId}/10`)).toEqual({ done: true, credit: 15 });
    expect(await ok("GET", `/payment/find_user/${userId}`)).toEqual({ user_id: userId, credit: 15 });
  });

  test("POST /payment/pay/{user_id}/{amount} answers {user_id, credit} with the new credit", async () => {
    const userId = await newUser(15);
    expect(await ok("POST", `/payment/pay/${userId}/6`)).toEqual({ user_id: userId, credit: 9 });
    expect(await creditOf(userId)).toBe(9);
  });

  test("paying more than the credit answers 409 and leaves the credit as it was", async () => {
    const userId = await newUser(5);
    expect(await post(url(`/payment/pay/${userId}/6`))).toEqual({
      status: 409,
      body: errorBody("insufficient_credit"),
    });
    expect(await creditOf(userId)).toBe(5);
  });

  test("POST /orders/create/{user_id} answers {order_id}; the new order is unpaid, empty and costs 0", async () => {
    const userId = await newUser();
    const created = await ok("POST", `/orders/create/${userId}`);
    expect(created).toEqual({ order_id: expect.any(String) });
    expect(await orderOf(created.order_id)).toEqual({
      order_id: created.order_id,
      paid: false,
      items: [],
      user_id: userId,
      total_cost: 0,
    });
  });

  test(
    "POST /orders/addItem/{order_id}/{item_id}/{quantity} answers {order_id, total_cost}; " +
      "find lists [item_id, quantity] pairs",
    async () => {
      const [cheap, dear] = [await newItem(3), await newItem(10)];
      const userId = await newUser();
      const orderId = await newOrder(userId);
      expect(await ok("POST", `/orders/addItem/${orderId}/${cheap}/2`)).toEqual({ order_id: orderId, total_cost: 6 });
      expect(await ok("POST", `/orders/addItem/${orderId}/${dear}/1`)).toEqual({ order_id: orderId, total_cost: 16 });
      expect(await ok("POST", `/orders/addItem/${orderId}/${cheap}/1`)).toEqual({ order_id: orderId, total_cost: 19 });
      expect(await orderOf(orderId)).toEqual({
        order_id: orderId,
        paid: false,
        items: [
          [cheap, 2],
          [dear, 1],
          [cheap, 1],
        ],
        user_id: userId,
        total_cost: 19,
      });
    },
  );

  test("POST /orders/checkout/{order_id} answers {order_id, paid: true}; find then says paid", async () => {
    const itemId = await newItem(4, 1);
    const userId = await newUser(4);
    const orderId = await newOrder(userId, [[itemId, 1]]);
    expect(await ok("POST", `/orders/checkout/${orderId}`)).toEqual({ order_id: orderId, paid: true });
    expect(await orderOf(orderId)).toEqual({
      order_id: orderId,
      paid: true,
      items: [[itemId, 1]],
      user_id: userId,
      total_cost: 4,
    });
  });
});

// ---- batch_init ----------------------------------------------------------------------------------

describe("batch_init creates the benchmark's data", () => {
  const ITEMS = 4;
  const USERS = 6;
  const ORDERS = 60;
  const PRICE = 7;
  const STOCK = 100;
  const CREDIT = 1_000;

  test('POST /stock/batch_init/{n}/{starting_stock}/{item_price} creates items "0" … "n-1" with that stock and price', async () => {
    expect(await ok("POST", `/stock/batch_init/${ITEMS}/${STOCK}/${PRICE}`)).toEqual({ msg: expect.any(String) });
    for (let i = 0; i < ITEMS; i++) expect(await ok("GET", `/stock/find/${i}`)).toEqual({ stock: STOCK, price: PRICE });
    expect((await get(url(`/stock/find/${ITEMS}`))).status).toBe(404);
  });

  test('POST /payment/batch_init/{n}/{starting_money} creates users "0" … "n-1" with that credit', async () => {
    expect(await ok("POST", `/payment/batch_init/${USERS}/${CREDIT}`)).toEqual({ msg: expect.any(String) });
    for (let i = 0; i < USERS; i++)
      expect(await ok("GET", `/payment/find_user/${i}`)).toEqual({ user_id: String(i), credit: CREDIT });
    expect((await get(url(`/payment/find_user/${USERS}`))).status).toBe(404);
  });

  test(
    'POST /orders/batch_init/{n}/{n_items}/{n_users}/{item_price} creates orders "0" … "n-1": ' +
      "a random user, two random items of quantity 1, total 2 × price",
    async () => {
      expect(await ok("POST", `/orders/batch_init/${ORDERS}/${ITEMS}/${USERS}/${PRICE}`)).toEqual({
        msg: expect.any(String),
      });
      const idBelow = (n: number) =>
        expect.stringMatching(new RegExp(`^(${Array.from({ length: n }, (_, i) => i).join("|")})$`));
      const users = new Set<string>();
      for (let i = 0; i < ORDERS; i++) {
        const order = await orderOf(String(i));
        expect(order).toEqual({
          order_id: String(i),
          paid: false,
          items: [
            [idBelow(ITEMS), 1],
            [idBelow(ITEMS), 1],
          ],
          user_id: idBelow(USERS),
          total_cost: 2 * PRICE,
        });
        users.add(order.user_id);
      }
      // Random, not one user for all: 60 orders over 6 users all landing on one has odds of 6^-59.
      expect(users.size).toBeGreaterThan(1);
      expect((await get(url(`/orders/find/${ORDERS}`))).status).toBe(404);
    },
  );

  test("an order made by batch_init checks out: its items' stock is taken and its user charged", async () => {
    await ok("POST", `/stock/batch_init/${ITEMS}/${STOCK}/${PRICE}`);
    await ok("POST", `/payment/batch_init/${USERS}/${CREDIT}`);
    await ok("POST", `/orders/batch_init/${ORDERS}/${ITEMS}/${USERS}/${PRICE}`);
    const order = await orderOf("0");
    const creditBefore = await creditOf(order.user_id);
    const stockBefore = new Map<string, number>();
    for (const [itemId] of order.items) stockBefore.set(itemId, await stockOf(itemId));

    expect(await checkout("0")).toEqual({ status: 200, body: { order_id: "0", paid: true } });
    expect(await creditOf(order.user_id)).toBe(creditBefore - 2 * PRICE);
    for (const [itemId, before] of stockBefore) {
      const units = order.items.filter(([id]: [string, number]) => id === itemId).length;
      expect(await stockOf(itemId)).toBe(before - units);
    }
  });
});
