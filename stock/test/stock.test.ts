/**
 * The stock service over real HTTP, on its own real Redis: the public API, and what it refuses
 * (stock-steps.test.ts has the saga steps).
 */
import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { keys } from "@checkout/common/keyspace";
import { MAX_STEPS_PER_CALL } from "@checkout/common/internal";
import { errorBody, get, post, step, stepCall } from "../../common/test/support/http";
import { without } from "../../common/test/support/redis-state";
import { stockOnItsOwnRedis } from "./support/stock-service";

/** Real servers on a shared machine: generous, so that load elsewhere never fails a test by time alone. */
setDefaultTimeout(30_000);

const MAX = Number.MAX_SAFE_INTEGER;

const { url, state, newItem, stockOf } = stockOnItsOwnRedis();

describe("public endpoints", () => {
  test("create makes an item with stock 0 at the given price", async () => {
    const created = await post(url("/item/create/42"));
    expect(created).toEqual({ status: 200, body: { item_id: expect.any(String) } });
    expect(await get(url(`/find/${created.body.item_id}`))).toEqual({ status: 200, body: { stock: 0, price: 42 } });
  });

  test("create accepts a price of 0", async () => {
    const created = await post(url("/item/create/0"));
    expect((await get(url(`/find/${created.body.item_id}`))).body).toEqual({ stock: 0, price: 0 });
  });

  test("find of an unknown item is 404 unknown_item", async () => {
    expect(await get(url("/find/no-such-item"))).toEqual({ status: 404, body: errorBody("unknown_item") });
  });

  test("add answers the new stock", async () => {
    const id = await newItem(5);
    expect(await post(url(`/add/${id}/7`))).toEqual({ status: 200, body: { item_id: id, stock: 7 } });
    expect(await post(url(`/add/${id}/3`))).toEqual({ status: 200, body: { item_id: id, stock: 10 } });
    expect(await get(url(`/find/${id}`))).toEqual({ status: 200, body: { stock: 10, price: 5 } });
  });

  test("subtract answers the new stock", async () => {
    const id = await newItem(5, 10);
    expect(await post(url(`/subtract/${id}/4`))).toEqual({ status: 200, body: { item_id: id, stock: 6 } });
    expect(await stockOf(id)).toBe(6);
  });

  test("subtract down to exactly 0 is allowed", async () => {
    const id = await newItem(5, 3);
    expect(await post(url(`/subtract/${id}/3`))).toEqual({ status: 200, body: { item_id: id, stock: 0 } });
  });

  test("subtract below zero is 409 insufficient_stock and changes nothing", async () => {
    const id = await newItem(5, 3);
    const before = await state();
    expect(await post(url(`/subtract/${id}/4`))).toEqual({ status: 409, body: errorBody("insufficient_stock") });
    expect(without(await state(), keys.seq)).toEqual(without(before, keys.seq));
    expect(await stockOf(id)).toBe(3);
  });

  test("add and subtract of an unknown item are 404 unknown_item and create nothing", async () => {
    const before = await state();
    expect(await post(url("/add/no-such-item/1"))).toEqual({ status: 404, body: errorBody("unknown_item") });
    expect(await post(url("/subtract/no-such-item/1"))).toEqual({ status: 404, body: errorBody("unknown_item") });
    expect(without(await state(), keys.seq)).toEqual(without(before, keys.seq));
  });

  test("add beyond 2^53-1 is 400 and changes nothing", async () => {
    const id = await newItem(5, 10);
    expect(await post(url(`/add/${id}/${MAX}`))).toEqual({ status: 400, body: errorBody("invalid_input") });
    expect(await stockOf(id)).toBe(10);
  });

  test("batch_init creates items '0' … 'n-1' with the given stock and price", async () => {
    expect(await post(url("/batch_init/3/100/7"))).toEqual({ status: 200, body: { msg: expect.any(String) } });
    for (const id of ["0", "1", "2"])
      expect(await get(url(`/find/${id}`))).toEqual({ status: 200, body: { stock: 100, price: 7 } });
    expect((await get(url("/find/3"))).status).toBe(404);
  });

  test("200 concurrent subtracts of 1 from a stock of 100: exactly 100 succeed and the stock ends at 0", async () => {
    const id = await newItem(1, 100);
    const answers = await Promise.all(Array.from({ length: 200 }, () => post(url(`/subtract/${id}/1`))));
    const statuses = answers.map((a) => a.status);
    expect(statuses.filter((s) => s === 200).length).toBe(100);
    expect(statuses.filter((s) => s === 409).length).toBe(100);
    expect(await stockOf(id)).toBe(0);
    // Every successful answer names a distinct resulting stock: no two subtracts saw the same state.
    expect(new Set(answers.filter((a) => a.status === 200).map((a) => a.body.stock)).size).toBe(100);
  });

  test("100 concurrent adds of 1 all count", async () => {
    const id = await newItem(1);
    const answers = await Promise.all(Array.from({ length: 100 }, () => post(url(`/add/${id}/1`))));
    expect(answers.every((a) => a.status === 200)).toBe(true);
    expect(await stockOf(id)).toBe(100);
  });
});

describe("invalid input", () => {
  const tooLong = "x".repeat(65);
  const cases: Array<[method: "GET" | "POST", path: string]> = [
    ["POST", "/item/create/-1"],
    ["POST", "/item/create/1.5"],
    ["POST", "/item/create/abc"],
    ["POST", "/item/create/1e3"],
    ["POST", "/item/create/9007199254740992"],
    ["GET", `/find/${tooLong}`],
    ["GET", "/find/a%20b"],
    ["GET", "/find/a%2Fb"],
    ["POST", "/add/0/-1"],
    ["POST", "/add/0/abc"],
    ["POST", "/add/0/1.5"],
    ["POST", "/add/0/9007199254740992"],
    ["POST", `/add/${tooLong}/1`],
    ["POST", "/subtract/0/-1"],
    ["POST", "/subtract/0/abc"],
    ["POST", "/subtract/0/9007199254740992"],
    ["POST", `/subtract/${tooLong}/1`],
    ["POST", "/batch_init/-1/1/1"],
    ["POST", "/batch_init/abc/1/1"],
    ["POST", "/batch_init/1000001/1/1"],
    ["POST", "/batch_init/1/-1/1"],
    ["POST", "/batch_init/1/1/1.5"],
    ["POST", "/batch_init/1/1/9007199254740992"],
  ];

  test.each(cases)("%s %s is 400 invalid_input and changes nothing", async (method, path) => {
    const before = await state();
    const answer = method === "GET" ? await get(url(path)) : await post(url(path));
    expect(answer).toEqual({ status: 400, body: errorBody("invalid_input") });
    expect(await state()).toEqual(before);
  });

  const badSteps: Array<[action: string, opId: string, fields: Record<string, unknown>]> = [
    ["take", "no-attempt", { items: [["0", 1]] }],
    ["take", "o:abc", { items: [["0", 1]] }],
    ["take", "o:1", { items: [] }],
    ["take", "o:1", { items: [["0", 0]] }],
    ["take", "o:1", { items: [["0", -1]] }],
    ["take", "o:1", { items: [["0", 1.5]] }],
    ["take", "o:1", { items: [["a/b", 1]] }],
    ["take", "o:1", {}],
    ["restore", "o:1", { items: [] }],
    ["restore", "no-attempt", { items: [["0", 1]] }],
    ["charge", "o:1", { items: [["0", 1]] }],
  ];

  test.each(badSteps)(
    "a %s step for %s with %j is answered 400 invalid_input and changes nothing",
    async (action, opId, fields) => {
      const before = await state();
      expect(await step(url(""), action, opId, fields)).toEqual({ status: 400, body: errorBody("invalid_input") });
      expect(await state()).toEqual(before);
    },
  );

  const take = (op_id: string) => ({ action: "take", op_id, items: [["0", 1]] });
  const badCalls: Array<[body: unknown]> = [
    [{ steps: [] }],
    [{ steps: Array.from({ length: MAX_STEPS_PER_CALL + 1 }, (_, i) => take(`o:${i}`)) }],
    [{ steps: take("o:1") }],
    [{}],
  ];

  test.each(badCalls)("a call with %j is 400 invalid_input and changes nothing", async (body) => {
    const before = await state();
    expect(await stepCall(url(""), body)).toEqual({ status: 400, body: errorBody("invalid_input") });
    expect(await state()).toEqual(before);
  });
});

test.each(["PUT", "DELETE", "PATCH", "OPTIONS"])(
  "%s, a method the API does not serve, is 405 with an Allow header and changes nothing",
  async (method) => {
    const before = await state();
    const response = await fetch(url("/add/0/1"), { method });
    expect({ status: response.status, allow: response.headers.get("allow"), body: await response.json() }).toEqual({
      status: 405,
      allow: "GET, HEAD, POST",
      body: errorBody("method_not_allowed"),
    });
    expect(await state()).toEqual(before);
  },
);
