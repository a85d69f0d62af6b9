/**
 * The order service over real HTTP, with real stock and payment services, each on its own real
 * Redis: the public API and checkout, the saga the API describes.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { keys, parseStored } from "@checkout/common/keyspace";
import { errorBody, get, post } from "../../common/test/support/http";
import { startRedis, type RedisServer } from "../../common/test/support/redis-server";
import { eventually } from "../../common/test/support/eventually";
import { redisState } from "../../common/test/support/redis-state";
import { startService, type RunningService } from "../../common/test/support/service";

/** Real servers on a shared machine: generous, so that load elsewhere never fails a test by time alone. */
setDefaultTimeout(60_000);

/** A compensation still running after this long is stuck. */
const COMPENSATION_TIMEOUT_MS = 30_000;

const redises: RedisServer[] = [];
let stock: RunningService;
let payment: RunningService;
let order: RunningService;

beforeAll(async () => {
  const [forStock, forPayment, forOrder] = await Promise.all([
    startRedis({ logFor: { service: "stock" } }),
    startRedis({ logFor: { service: "payment" } }),
    startRedis({ logFor: { service: "order" } }),
  ]);
  redises.push(forStock, forPayment, forOrder);
  stock = await startService("stock", { redisPort: forStock.port });
  payment = await startService("payment", { redisPort: forPayment.port });
  order = await startService("order", { redisPort: forOrder.port, stockUrls: [stock.url], paymentUrls: [payment.url] });
});

afterAll(async () => {
  await order?.stop();
  await stock?.stop();
  await payment?.stop();
  for (const redis of redises) await redis.stop();
});

async function newItem(price: number, units: number): Promise<string> {
  const { body } = await post(`${stock.url}/item/create/${price}`);
  if (units > 0) await post(`${stock.url}/add/${body.item_id}/${units}`);
  return body.item_id;
}

async function newUser(credit: number): Promise<string> {
  const { body } = await post(`${payment.url}/create_user`);
  if (credit > 0) await post(`${payment.url}/add_funds/${body.user_id}/${credit}`);
  return body.user_id;
}

async function newOrder(userId: string, lines: Array<[string, number]> = []): Promise<string> {
  const { body } = await post(`${order.url}/create/${userId}`);
  for (const [item, quantity] of lines)
    expect((await post(`${order.url}/addItem/${body.order_id}/${item}/${quantity}`)).status).toBe(200);
  return body.order_id;
}

const stockOf = async (id: string): Promise<number> => (await get(`${stock.url}/find/${id}`)).body.stock;
const creditOf = async (id: string): Promise<number> => (await get(`${payment.url}/find_user/${id}`)).body.credit;
const find = async (id: string) => (await get(`${order.url}/find/${id}`)).body;
const checkout = (id: string) => post(`${order.url}/checkout/${id}`);
/** Compensations may still be running when the 409 goes out; they finish shortly after. */
const stockBecomes = (id: string, units: number) =>
  eventually(async () => (await stockOf(id)) === units, COMPENSATION_TIMEOUT_MS);

describe("orders", () => {
  test("create makes an unpaid order without items for the user", async () => {
    const created = await post(`${order.url}/create/user-1`);
    expect(created).toEqual({ status: 200, body: { order_id: expect.any(String) } });
    expect(await get(`${order.url}/find/${created.body.order_id}`)).toEqual({
      status: 200,
      body: { order_id: created.body.order_id, paid: false, items: [], user_id: "user-1", total_cost: 0 },
    });
  });

  test("find of an unknown order is 404 unknown_order", async () => {
    expect(await get(`${order.url}/find/no-such-order`)).toEqual({ status: 404, body: errorBody("unknown_order") });
  });

  test("addItem appends [item, quantity] and adds quantity × price to the total", async () => {
    const [a, b] = [await newItem(5, 0), await newItem(7, 0)];
    const id = await newOrder("user-1");
    expect(await post(`${order.url}/addItem/${id}/${a}/2`)).toEqual({
      status: 200,
      body: { order_id: id, total_cost: 10 },
    });
    expect(await post(`${order.url}/addItem/${id}/${b}/1`)).toEqual({
      status: 200,
      body: { order_id: id, total_cost: 17 },
    });
    expect(await post(`${order.url}/addItem/${id}/${a}/1`)).toEqual({
      status: 200,
      body: { order_id: id, total_cost: 22 },
    });
    expect(await find(id)).toEqual({
      order_id: id,
      paid: false,
      items: [
        [a, 2],
        [b, 1],
        [a, 1],
      ],
      user_id: "user-1",
      total_cost: 22,
    });
  });

  test("addItem of an unknown item is 404 unknown_item and changes nothing", async () => {
    const id = await newOrder("user-1");
    expect(await post(`${order.url}/addItem/${id}/no-such-item/1`)).toEqual({
      status: 404,
      body: errorBody("unknown_item"),
    });
    expect(await find(id)).toMatchObject({ items: [], total_cost: 0 });
  });

  test("addItem to an unknown order is 404 unknown_order", async () => {
    const a = await newItem(5, 0);
    expect(await post(`${order.url}/addItem/no-such-order/${a}/1`)).toEqual({
      status: 404,
      body: errorBody("unknown_order"),
    });
  });

  test("100 concurrent addItems to one order all count", async () => {
    const [a, b] = [await newItem(3, 0), await newItem(4, 0)];
    const id = await newOrder("user-1");
    const answers = await Promise.all(
      Array.from({ length: 100 }, (_, i) => post(`${order.url}/addItem/${id}/${i % 2 ? a : b}/1`)),
    );
    expect(answers.every((x) => x.status === 200)).toBe(true);
    const found = await find(id);
    expect(found.items.length).toBe(100);
    expect(found.total_cost).toBe(50 * 3 + 50 * 4);
  });

  test("batch_init creates orders '0' … 'n-1', each of two random items for a random user", async () => {
    expect(await post(`${order.url}/batch_init/20/5/4/3`)).toEqual({ status: 200, body: { msg: expect.any(String) } });
    for (let i = 0; i < 20; i++) {
      const found = await find(String(i));
      expect(found).toEqual({
        order_id: String(i),
        paid: false,
        items: [
          [expect.any(String), 1],
          [expect.any(String), 1],
        ],
        user_id: expect.any(String),
        total_cost: 6,
      });
      expect(Number(found.user_id)).toBeLessThan(4);
      for (const [item] of found.items) expect(["0", "1", "2", "3", "4"]).toContain(item);
    }
    expect((await get(`${order.url}/find/20`)).status).toBe(404);
  });
});

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

describe("invalid input", () => {
  const tooLong = "x".repeat(65);
  const cases: Array<[method: "GET" | "POST", path: string]> = [
    ["POST", `/create/${tooLong}`],
    ["POST", "/create/a%20b"],
    ["GET", `/find/${tooLong}`],
    ["GET", "/find/a%2Fb"],
    ["POST", "/addItem/0/0/0"],
    ["POST", "/addItem/0/0/-1"],
    ["POST", "/addItem/0/0/abc"],
    ["POST", "/addItem/0/0/1.5"],
    ["POST", "/addItem/0/0/9007199254740992"],
    ["POST", `/addItem/${tooLong}/0/1`],
    ["POST", `/addItem/0/${tooLong}/1`],
    ["POST", `/checkout/${tooLong}`],
    ["POST", "/checkout/a%20b"],
    ["POST", "/batch_init/-1/1/1/1"],
    ["POST", "/batch_init/abc/1/1/1"],
    ["POST", "/batch_init/1000001/1/1/1"],
    ["POST", "/batch_init/1/0/1/1"],
    ["POST", "/batch_init/1/1/0/1"],
    ["POST", "/batch_init/1/1/1/-1"],
    ["POST", "/batch_init/1/1/1/9007199254740991"],
  ];

  test.each(cases)("%s %s is 400 invalid_input and changes nothing", async (method, path) => {
    const before = await Promise.all([order, stock, payment].map((s) => redisState(s.store.client)));
    const answer = method === "GET" ? await get(order.url + path) : await post(order.url + path);
    expect(answer).toEqual({ status: 400, body: errorBody("invalid_input") });
    expect(await Promise.all([order, stock, payment].map((s) => redisState(s.store.client)))).toEqual(before);
  });

  test("addItem whose total would pass 2^53-1 is 400 and changes nothing", async () => {
    const a = await newItem(2 ** 40, 0);
    const id = await newOrder("user-1", [[a, 1]]);
    expect(await post(`${order.url}/addItem/${id}/${a}/${2 ** 20}`)).toEqual({
      status: 400,
      body: errorBody("invalid_input"),
    });
    expect(await find(id)).toMatchObject({ items: [[a, 1]], total_cost: 2 ** 40 });
  });
});
