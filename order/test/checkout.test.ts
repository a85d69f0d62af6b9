/**
 * Checkout over real HTTP, through the order service to real stock and payment services, each on its
 * own real Redis: the saga the API describes, its refusals and their compensations, and concurrency.
 */
import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { keys, parseStored } from "@checkout/common/keyspace";
import { errorBody, post } from "../../common/test/support/http";
import { eventually } from "../../common/test/support/eventually";
import {
  checkout,
  COMPENSATION_TIMEOUT_MS,
  creditOf,
  find,
  newItem,
  newOrder,
  newUser,
  order,
  orderServers,
  payment,
  stock,
  stockBecomes,
  stockOf,
} from "./support/order-servers";

/** Real servers on a shared machine: generous, so that load elsewhere never fails a test by time alone. */
setDefaultTimeout(60_000);

orderServers();

describe("checkout", () => {
  test("takes the stock, charges the total, marks the order paid and answers 200", async () => {
    const [a, b] = [await newItem(5, 10), await newItem(7, 10)];
    const user = await newUser(100);
    const id = await newOrder(user, [
      [a, 2],
      [b, 1],
      [a, 1],
    ]);
    expect(await checkout(id)).toEqual({ status: 200, body: { order_id: id, paid: true } });
    expect([await stockOf(a), await stockOf(b)]).toEqual([7, 9]);
    expect(await creditOf(user)).toBe(100 - 22);
    expect(await find(id)).toMatchObject({ paid: true, total_cost: 22 });
  });

  test("of an order without items charges nothing and marks it paid", async () => {
    const user = await newUser(5);
    const id = await newOrder(user);
    expect(await checkout(id)).toEqual({ status: 200, body: { order_id: id, paid: true } });
    expect(await creditOf(user)).toBe(5);
  });

  test("of a paid order answers 200 again and charges nothing more", async () => {
    const a = await newItem(5, 10);
    const user = await newUser(100);
    const id = await newOrder(user, [[a, 1]]);
    await checkout(id);
    expect(await checkout(id)).toEqual({ status: 200, body: { order_id: id, paid: true } });
    expect(await creditOf(user)).toBe(95);
    expect(await stockOf(a)).toBe(9);
  });

  test("adding an item to a paid order is 409 order_already_paid and changes nothing", async () => {
    const a = await newItem(5, 10);
    const id = await newOrder(await newUser(100), [[a, 1]]);
    await checkout(id);
    expect(await post(`${order.url}/addItem/${id}/${a}/1`)).toEqual({
      status: 409,
      body: errorBody("order_already_paid"),
    });
    expect(await find(id)).toMatchObject({ items: [[a, 1]], total_cost: 5, paid: true });
  });

  test("refused for stock is 409 insufficient_stock, takes no stock and charges nothing", async () => {
    const [a, b] = [await newItem(5, 10), await newItem(7, 1)];
    const user = await newUser(100);
    const id = await newOrder(user, [
      [a, 1],
      [b, 2],
    ]);
    expect(await checkout(id)).toEqual({ status: 409, body: errorBody("insufficient_stock") });
    expect([await stockOf(a), await stockOf(b)]).toEqual([10, 1]);
    expect(await creditOf(user)).toBe(100);
    expect(await find(id)).toMatchObject({ paid: false });
  });

  test("refused for credit is 409 insufficient_credit and restores the stock it took", async () => {
    const a = await newItem(5, 10);
    const user = await newUser(9);
    const id = await newOrder(user, [[a, 2]]);
    expect(await checkout(id)).toEqual({ status: 409, body: errorBody("insufficient_credit") });
    expect(await stockBecomes(a, 10)).toBe(true);
    expect(await creditOf(user)).toBe(9);
    expect(await find(id)).toMatchObject({ paid: false });
  });

  test("of an order whose user does not exist is 409 and restores the stock it took", async () => {
    const a = await newItem(5, 10);
    const id = await newOrder("no-such-user", [[a, 3]]);
    const answer = await checkout(id);
    expect(answer).toEqual({ status: 409, body: errorBody("unknown_user") });
    expect(await stockBecomes(a, 10)).toBe(true);
    expect(await find(id)).toMatchObject({ paid: false });
  });

  test("of an order with an item stock no longer knows is 409 unknown_item and charges nothing", async () => {
    const user = await newUser(100);
    const id = await newOrder(user);
    // An order written by batch_init can name items that were never created.
    const stored = parseStored(await order.store.client.get(keys.order(id)))!;
    await order.store.client.set(
      keys.order(id),
      JSON.stringify({ ...stored, items: JSON.stringify([["no-such-item", 1]]), total_cost: "5" }),
    );
    expect(await checkout(id)).toEqual({ status: 409, body: errorBody("unknown_item") });
    expect(await creditOf(user)).toBe(100);
  });

  test("of an unknown order is 404 unknown_order", async () => {
    expect(await checkout("no-such-order")).toEqual({ status: 404, body: errorBody("unknown_order") });
  });

  test("an order reset by batch_init and checked out again is charged again", async () => {
    // batch_init restarts an order's attempts at 1: the operation ids must still be new, or the
    // participants would answer the old attempt's outcome and the order would be paid for nothing.
    await post(`${stock.url}/batch_init/2/100/1`);
    await post(`${payment.url}/batch_init/2/100`);
    await post(`${order.url}/batch_init/1/2/2/1`);
    expect((await checkout("0")).status).toBe(200);
    const user = (await find("0")).user_id;
    const creditAfterFirst = await creditOf(user);
    await post(`${order.url}/batch_init/1/2/2/1`);
    const resetUser = (await find("0")).user_id;
    const creditBefore = await creditOf(resetUser);
    expect((await checkout("0")).status).toBe(200);
    expect(await creditOf(resetUser)).toBe(creditBefore - 2);
    expect(creditAfterFirst).toBeLessThan(100);
  });

  test("a refused checkout can be retried once the credit is there, and then pays once", async () => {
    const a = await newItem(5, 10);
    const user = await newUser(4);
    const id = await newOrder(user, [[a, 1]]);
    expect((await checkout(id)).status).toBe(409);
    expect(await stockBecomes(a, 10)).toBe(true);
    expect(
      await eventually(
        async () => (await order.store.read(keys.order(id)))?.saga_status === "failed",
        COMPENSATION_TIMEOUT_MS,
      ),
    ).toBe(true);
    await post(`${payment.url}/add_funds/${user}/1`);
    expect(await checkout(id)).toEqual({ status: 200, body: { order_id: id, paid: true } });
    expect(await creditOf(user)).toBe(0);
    expect(await stockOf(a)).toBe(9);
  });

  test("50 concurrent checkouts of one order all answer 200 and charge once", async () => {
    const a = await newItem(5, 10);
    const user = await newUser(100);
    const id = await newOrder(user, [[a, 2]]);
    const answers = await Promise.all(Array.from({ length: 50 }, () => checkout(id)));
    expect(answers.map((x) => x.status)).toEqual(Array(50).fill(200));
    expect(await creditOf(user)).toBe(90);
    expect(await stockOf(a)).toBe(8);
  });

  test("1 item of stock 10, 20 orders for it checked out concurrently: exactly 10 succeed, and the databases agree", async () => {
    const a = await newItem(1, 10);
    const users = await Promise.all(Array.from({ length: 20 }, () => newUser(1)));
    const ids = await Promise.all(users.map((u) => newOrder(u, [[a, 1]])));
    const answers = await Promise.all(ids.map(checkout));
    const paid = ids.filter((_, i) => answers[i]!.status === 200);
    expect(paid.length).toBe(10);
    expect(answers.filter((x) => x.status === 409).length).toBe(10);
    expect(await stockBecomes(a, 0)).toBe(true);
    const credits = await Promise.all(users.map(creditOf));
    expect(credits.reduce((s, c) => s + c, 0)).toBe(10);
    for (const [i, id] of ids.entries()) expect((await find(id)).paid).toBe(answers[i]!.status === 200);
  });
});
