/**
 * The order service over real HTTP, with real stock and payment services, each on its own real
 * Redis: orders and what the API refuses (checkout.test.ts has checkout, the saga the API describes).
 */
import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { errorBody, get, post } from "../../common/test/support/http";
import { redisState } from "../../common/test/support/redis-state";
import { find, newItem, newOrder, order, orderServers, payment, stock } from "./support/order-servers";

/** Real servers on a shared machine: generous, so that load elsewhere never fails a test by time alone. */
setDefaultTimeout(60_000);

orderServers();

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
