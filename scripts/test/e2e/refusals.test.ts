/**
 * What the public API (API.md) refuses, through the gateway of one real stack (two replicas of every
 * service, nginx in front): malformed input, unknown entities, and paths the gateway does not serve,
 * its internal saga endpoints among them.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { errorBody, get, post } from "../../../common/test/support/http";
import { rawRequest } from "../support/raw-http";
import { gatewayClient } from "../support/gateway-client";
import { startTestStack, TEST_STACK_START_TIMEOUT_MS, type TestStack } from "../support/test-stack";

/** A whole stack on a shared 2-core machine: generous, so that load elsewhere never fails a test by time alone. */
setDefaultTimeout(120_000);

/** The largest integer the API accepts (2^53-1), and the first one beyond it. */
const MAX_INTEGER = "9007199254740991";
const BEYOND_MAX_INTEGER = "9007199254740992";

let shop: TestStack;

beforeAll(async () => {
  shop = await startTestStack();
}, TEST_STACK_START_TIMEOUT_MS);

afterAll(async () => {
  await shop?.stop();
});

const {
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
  unknownId,
  expectNothingChanged,
} = gatewayClient(() => shop);

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
