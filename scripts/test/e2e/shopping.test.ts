/**
 * The public API (API.md), to the letter, through the gateway of one real stack (two replicas of
 * every service, nginx in front): the shape of every 200 answer, batch_init, the shopping flow with
 * its refusals, malformed input, unknown entities and paths, and one order under concurrent calls.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { SERVICES, type ServiceName } from "../../../common/src/config";
import { keys } from "../../../common/src/keyspace";
import { eventually } from "../../../common/test/support/eventually";
import { errorBody, get, post, type Answer } from "../../../common/test/support/http";
import { redisState, type RedisState } from "../../../common/test/support/redis-state";
import { stateDifferences, untilQuiescent } from "../support/quiescence";
import { rawRequest } from "../support/raw-http";
import { startTestStack, TEST_STACK_START_TIMEOUT_MS, type TestStack } from "../support/test-stack";

/** A whole stack on a shared 2-core machine: generous, so that load elsewhere never fails a test by time alone. */
setDefaultTimeout(120_000);

/** The largest integer the API accepts (2^53-1), and the first one beyond it. */
const MAX_INTEGER = "9007199254740991";
const BEYOND_MAX_INTEGER = "9007199254740992";
/** A refused checkout answers once compensation is decided; a compensation still running after this long is stuck. */
const COMPENSATION_TIMEOUT_MS = 30_000;
/** Keys that change without any request changing data: the sequence counter, log lines in transit. */
const BOOKKEEPING = new Set<string>([keys.seq, keys.logStream, keys.durableLog, keys.compactionLock]);

let shop: TestStack;

beforeAll(async () => {
  shop = await startTestStack();
}, TEST_STACK_START_TIMEOUT_MS);

afterAll(async () => {
  await shop?.stop();
});

// ---- talking to the gateway --------------------------------------------------------------------

const url = (path: string) => `${shop.gatewayUrl}${path}`;
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
  await untilQuiescent(shop);
  const states = await Promise.all(SERVICES.map((service) => redisState(shop.redis(service))));
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

  test("POST /orders/addItem/{order_id}/{item_id}/{quantity} answers {order_id, total_cost}; find lists [item_id, quantity] pairs", async () => {
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
  });

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

  test('POST /orders/batch_init/{n}/{n_items}/{n_users}/{item_price} creates orders "0" … "n-1": a random user, two random items of quantity 1, total 2 × price', async () => {
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
  });

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

// ---- malformed input -----------------------------------------------------------------------------

/** Not an integer, negative, beyond 2^53-1. */
const BAD_INTEGERS = ["abc", "1.5", "-1", "-0", BEYOND_MAX_INTEGER, "99999999999999999999", "1e3", "0x10", "%201"];
/** Too long (65 characters), or characters an id may not hold. The encoded slash has a test of its own below. */
const BAD_IDS = ["x".repeat(65), "a%20b", "a.b", "%C3%A9", "a%3Bb"];

type Param = { name: string; kind: "id" | "integer"; valid: () => string };
type Endpoint = { method: "GET" | "POST"; path: string; params: Param[] };

describe("malformed input answers 400 {error, message} on every endpoint and changes nothing", () => {
  let itemId: string;
  let userId: string;
  let orderId: string;
  const item = (name = "item_id"): Param => ({ name, kind: "id", valid: () => itemId });
  const user = (name = "user_id"): Param => ({ name, kind: "id", valid: () => userId });
  const order = (name = "order_id"): Param => ({ name, kind: "id", valid: () => orderId });
  const integer = (name: string, valid = "1"): Param => ({ name, kind: "integer", valid: () => valid });

  const ENDPOINTS: Endpoint[] = [
    { method: "POST", path: "/stock/item/create", params: [integer("price")] },
    { method: "GET", path: "/stock/find", params: [item()] },
    { method: "POST", path: "/stock/add", params: [item(), integer("amount")] },
    { method: "POST", path: "/stock/subtract", params: [item(), integer("amount")] },
    {
      method: "POST",
      path: "/stock/batch_init",
      params: [integer("n", "2"), integer("starting_stock"), integer("item_price")],
    },
    { method: "GET", path: "/payment/find_user", params: [user()] },
    { method: "POST", path: "/payment/add_funds", params: [user(), integer("amount")] },
    { method: "POST", path: "/payment/pay", params: [user(), integer("amount")] },
    { method: "POST", path: "/payment/batch_init", params: [integer("n", "2"), integer("starting_money")] },
    { method: "POST", path: "/orders/create", params: [user()] },
    { method: "GET", path: "/orders/find", params: [order()] },
    { method: "POST", path: "/orders/addItem", params: [order(), item(), integer("quantity")] },
    { method: "POST", path: "/orders/checkout", params: [order()] },
    {
      method: "POST",
      path: "/orders/batch_init",
      params: [integer("n", "2"), integer("n_items"), integer("n_users"), integer("item_price")],
    },
  ];

  /** Every path of `endpoint` with exactly one parameter replaced by a bad value. */
  function malformedPaths(endpoint: Endpoint, badIds: readonly string[], badIntegers: readonly string[]): string[] {
    return endpoint.params.flatMap((param, i) =>
      (param.kind === "id" ? badIds : badIntegers).map((bad) =>
        [endpoint.path, ...endpoint.params.map((p, j) => (j === i ? bad : p.valid()))].join("/"),
      ),
    );
  }

  /** The calls among `paths` that did not answer 400 {error: "invalid_input", message}, with what they answered. */
  async function notRefusedAsMalformed(method: "GET" | "POST", paths: readonly string[]): Promise<string[]> {
    const wrong: string[] = [];
    for (const path of paths) {
      const answer = await send(method, path);
      const refused =
        answer.status === 400 && answer.body?.error === "invalid_input" && typeof answer.body?.message === "string";
      if (!refused || Object.keys(answer.body).length !== 2)
        wrong.push(`${method} ${path} → ${answer.status} ${JSON.stringify(answer.body)}`);
    }
    return wrong;
  }

  beforeAll(async () => {
    itemId = await newItem(5, 10);
    userId = await newUser(50);
    orderId = await newOrder(userId, [[itemId, 1]]);
  });

  for (const endpoint of ENDPOINTS) {
    const template = [endpoint.path, ...endpoint.params.map((p) => `{${p.name}}`)].join("/");
    test(`${endpoint.method} ${template}`, async () => {
      await expectNothingChanged(async () => {
        expect(await notRefusedAsMalformed(endpoint.method, malformedPaths(endpoint, BAD_IDS, BAD_INTEGERS))).toEqual(
          [],
        );
      });
    });
  }

  test("an id holding an encoded slash (a%2Fb) is a bad id: 400 on every endpoint that takes an id", async () => {
    await expectNothingChanged(async () => {
      const wrong: string[] = [];
      for (const endpoint of ENDPOINTS)
        wrong.push(...(await notRefusedAsMalformed(endpoint.method, malformedPaths(endpoint, ["a%2Fb"], []))));
      expect(wrong).toEqual([]);
    });
  });

  test("2^53-1 is accepted as an amount", async () => {
    const richUser = await newUser();
    expect(await ok("POST", `/payment/add_funds/${richUser}/${MAX_INTEGER}`)).toEqual({
      done: true,
      credit: Number(MAX_INTEGER),
    });
  });

  test("an amount that would take the credit beyond 2^53-1 answers 400 and changes nothing", async () => {
    const richUser = await newUser();
    await ok("POST", `/payment/add_funds/${richUser}/${MAX_INTEGER}`);
    expect(await post(url(`/payment/add_funds/${richUser}/1`))).toEqual({
      status: 400,
      body: errorBody("invalid_input"),
    });
    expect(await creditOf(richUser)).toBe(Number(MAX_INTEGER));
  });
});

// ---- unknown entities and paths ------------------------------------------------------------------

describe("unknown orders, items and users answer 404 {error, message}", () => {
  test("stock: find, add and subtract of an unknown item", async () => {
    const missing = unknownId();
    expect(await get(url(`/stock/find/${missing}`))).toEqual({ status: 404, body: errorBody("unknown_item") });
    expect(await post(url(`/stock/add/${missing}/1`))).toEqual({ status: 404, body: errorBody("unknown_item") });
    expect(await post(url(`/stock/subtract/${missing}/1`))).toEqual({ status: 404, body: errorBody("unknown_item") });
    expect((await get(url(`/stock/find/${missing}`))).status).toBe(404);
  });

  test("payment: find_user, add_funds and pay of an unknown user", async () => {
    const missing = unknownId();
    expect(await get(url(`/payment/find_user/${missing}`))).toEqual({ status: 404, body: errorBody("unknown_user") });
    expect(await post(url(`/payment/add_funds/${missing}/1`))).toEqual({
      status: 404,
      body: errorBody("unknown_user"),
    });
    expect(await post(url(`/payment/pay/${missing}/1`))).toEqual({ status: 404, body: errorBody("unknown_user") });
    expect((await get(url(`/payment/find_user/${missing}`))).status).toBe(404);
  });

  test("orders: find, addItem and checkout of an unknown order", async () => {
    const missing = unknownId();
    const itemId = await newItem(1, 1);
    expect(await get(url(`/orders/find/${missing}`))).toEqual({ status: 404, body: errorBody("unknown_order") });
    expect(await post(url(`/orders/addItem/${missing}/${itemId}/1`))).toEqual({
      status: 404,
      body: errorBody("unknown_order"),
    });
    expect(await checkout(missing)).toEqual({ status: 404, body: errorBody("unknown_order") });
    expect((await get(url(`/orders/find/${missing}`))).status).toBe(404);
  });

  test("orders: adding an unknown item answers 404 and leaves the order as it was", async () => {
    const orderId = await newOrder(await newUser());
    const before = await orderOf(orderId);
    expect(await post(url(`/orders/addItem/${orderId}/${unknownId()}/1`))).toEqual({
      status: 404,
      body: errorBody("unknown_item"),
    });
    expect(await orderOf(orderId)).toEqual(before);
  });
});

describe("paths the gateway does not serve answer 404 with a JSON error", () => {
  test("unknown paths", async () => {
    const paths = [
      "/",
      "/nope",
      "/stock",
      "/orders/",
      "/payment/nope",
      "/stock/find",
      "/orders/find/",
      "/stock/item/create/1/2",
      "/payment/create_user/1",
      "/orders/checkout",
      "/orders/find",
      "/payment/find_user",
    ];
    for (const path of paths) {
      expect({ path, ...(await post(url(path))) }).toEqual({
        path,
        status: 404,
        body: { error: expect.any(String), message: expect.any(String) },
      });
      expect({ path, ...(await get(url(path))) }).toEqual({
        path,
        status: 404,
        body: { error: expect.any(String), message: expect.any(String) },
      });
    }
  });

  test("the internal saga endpoints of stock and payment (only the order service may call them)", async () => {
    const itemId = await newItem(1, 10);
    const userId = await newUser(10);
    const take = (action: string, op: number) => ({
      steps: [{ action, op_id: `intruder:${op}`, items: [[itemId, 3]] }],
    });
    const charge = (action: string, op: number) => ({
      steps: [{ action, op_id: `intruder:${op}`, user_id: userId, amount: 3 }],
    });
    const attempts: Array<[string, unknown]> = [
      ["/stock/internal/steps", take("take", 1)],
      ["/stock/internal/steps", take("restore", 2)],
      ["/payment/internal/steps", charge("charge", 3)],
      ["/payment/internal/steps", charge("refund", 4)],
      ["/orders/internal/anything", {}],
      ["/stock/%69nternal/steps", take("take", 5)],
      ["/STOCK/INTERNAL/steps", take("take", 6)],
      ["/stock//internal/steps", take("take", 7)],
      ["/stock/find/../internal/steps", take("take", 8)],
      ["/stock/find/%2E%2E/internal/steps", take("take", 9)],
      ["/payment/find_user%2F..%2Finternal/steps", charge("charge", 10)],
    ];
    for (const [path, body] of attempts) {
      const { status, body: answered } = await rawRequest(shop.gatewayUrl, "POST", path, body);
      // Refused by the gateway's rule (404), or by the service where a spelling slips past it: no
      // request through the gateway carries the internal secret (401).
      const refusal =
        status === 401 ? { status, body: errorBody("unauthorized") } : { status: 404, body: errorBody("not_found") };
      expect({ path, status, body: answered }).toEqual({ path, ...refusal });
    }
    expect([await stockOf(itemId), await creditOf(userId)]).toEqual([10, 10]);
  });

  test("the internal saga endpoints stay out of reach with backslashes in the path (which the services read as slashes)", async () => {
    const itemId = await newItem(1, 10);
    const userId = await newUser(10);
    const take = (op: number) => ({ steps: [{ action: "take", op_id: `intruder:${op}`, items: [[itemId, 3]] }] });
    const charge = (op: number) => ({
      steps: [{ action: "charge", op_id: `intruder:${op}`, user_id: userId, amount: 3 }],
    });
    const attempts: Array<[string, unknown]> = [
      ["/stock/find\\..\\internal/steps", take(1)],
      ["/stock/internal\\steps", take(2)],
      ["/payment/find_user\\..\\internal/steps", charge(3)],
      ["/payment/internal\\steps", charge(4)],
    ];
    const reached: string[] = [];
    for (const [path, body] of attempts) {
      const answer = await rawRequest(shop.gatewayUrl, "POST", path, body);
      // Not found, or refused as a malformed path: either way, never passed on to the service.
      const refused = (answer.status === 404 || answer.status === 400) && typeof answer.body?.error === "string";
      if (!refused) reached.push(`POST ${path} → ${answer.status} ${JSON.stringify(answer.body)}`);
    }
    expect(reached).toEqual([]);
    expect([await stockOf(itemId), await creditOf(userId)]).toEqual([10, 10]);
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
