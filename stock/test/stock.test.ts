/** The stock service over real HTTP, on its own real Redis: the public API and the saga steps. */
import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { keys } from "@checkout/common/keyspace";
import { internalAuthorization, MAX_STEPS_PER_CALL, STEPS_PATH } from "@checkout/common/internal";
import { call, errorBody, get, post, step, stepCall, TEST_INTERNAL_SECRET } from "../../common/test/support/http";
import { without } from "../../common/test/support/redis-state";
import { serviceOnItsOwnRedis } from "../../common/test/support/service";

/** Real servers on a shared machine: generous, so that load elsewhere never fails a test by time alone. */
setDefaultTimeout(30_000);

const MAX = Number.MAX_SAFE_INTEGER;

const { url, state } = serviceOnItsOwnRedis("stock");

async function newItem(price: number, units = 0): Promise<string> {
  const { body } = await post(url(`/item/create/${price}`));
  if (units > 0) await post(url(`/add/${body.item_id}/${units}`));
  return body.item_id;
}

const stockOf = async (id: string): Promise<number> => (await get(url(`/find/${id}`))).body.stock;

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

describe("saga steps answer only the order service", () => {
  test.each([
    ["no credential", {}],
    ["another secret", internalAuthorization(`${TEST_INTERNAL_SECRET}x`)],
  ] as Array<[string, Record<string, string>]>)(
    "a take with %s is refused 401 unauthorized and takes nothing",
    async (_what, headers) => {
      const before = await state();
      const body = { steps: [{ action: "take", op_id: "intruder:1", items: [["0", 1]] }] };
      expect(await call("POST", url(STEPS_PATH), body, headers)).toEqual({
        status: 401,
        body: errorBody("unauthorized"),
      });
      expect(await state()).toEqual(before);
    },
  );
});

describe("saga steps: take and restore", () => {
  test("take subtracts every item of the order and answers applied", async () => {
    const [a, b] = [await newItem(1, 10), await newItem(2, 10)];
    expect(
      await step(url(""), "take", "t1:1", {
        items: [
          [a, 2],
          [b, 3],
        ],
      }),
    ).toEqual({ status: 200, body: { outcome: "applied" } });
    expect([await stockOf(a), await stockOf(b)]).toEqual([8, 7]);
  });

  test("take sums the quantities of a repeated item", async () => {
    const a = await newItem(1, 10);
    expect(
      (
        await step(url(""), "take", "t2:1", {
          items: [
            [a, 2],
            [a, 3],
          ],
        })
      ).status,
    ).toBe(200);
    expect(await stockOf(a)).toBe(5);
  });

  test("a repeated take answers applied again and takes nothing more", async () => {
    const a = await newItem(1, 10);
    await step(url(""), "take", "t3:1", { items: [[a, 4]] });
    expect(await step(url(""), "take", "t3:1", { items: [[a, 4]] })).toEqual({
      status: 200,
      body: { outcome: "applied" },
    });
    expect(await stockOf(a)).toBe(6);
  });

  test("20 concurrent copies of one take take the stock once", async () => {
    const a = await newItem(1, 10);
    const answers = await Promise.all(
      Array.from({ length: 20 }, () => step(url(""), "take", "t4:1", { items: [[a, 4]] })),
    );
    expect(answers.every((x) => x.status === 200 && x.body.outcome === "applied")).toBe(true);
    expect(await stockOf(a)).toBe(6);
  });

  test("another attempt of the same order is another operation", async () => {
    const a = await newItem(1, 10);
    await step(url(""), "take", "t5:1", { items: [[a, 4]] });
    await step(url(""), "take", "t5:2", { items: [[a, 4]] });
    expect(await stockOf(a)).toBe(2);
  });

  test("take of several items is all-or-nothing when one is short", async () => {
    const [a, b] = [await newItem(1, 10), await newItem(1, 1)];
    expect(
      await step(url(""), "take", "t6:1", {
        items: [
          [a, 2],
          [b, 2],
        ],
      }),
    ).toEqual({ status: 409, body: errorBody("insufficient_stock") });
    expect([await stockOf(a), await stockOf(b)]).toEqual([10, 1]);
  });

  test("take of several items is all-or-nothing when one is unknown", async () => {
    const a = await newItem(1, 10);
    expect(
      await step(url(""), "take", "t7:1", {
        items: [
          [a, 2],
          ["no-such-item", 1],
        ],
      }),
    ).toEqual({ status: 404, body: errorBody("unknown_item") });
    expect(await stockOf(a)).toBe(10);
  });

  test("a refused take is refused again even once the stock would allow it", async () => {
    const a = await newItem(1, 1);
    await step(url(""), "take", "t8:1", { items: [[a, 2]] });
    await post(url(`/add/${a}/10`));
    expect(await step(url(""), "take", "t8:1", { items: [[a, 2]] })).toEqual({
      status: 409,
      body: errorBody("insufficient_stock"),
    });
    expect(await stockOf(a)).toBe(11);
  });

  test("restore puts back what its take took, once", async () => {
    const [a, b] = [await newItem(1, 10), await newItem(1, 10)];
    const items = [
      [a, 2],
      [b, 3],
    ];
    await step(url(""), "take", "r1:1", { items });
    expect(await step(url(""), "restore", "r1:1", { items })).toEqual({
      status: 200,
      body: { outcome: "compensated" },
    });
    expect([await stockOf(a), await stockOf(b)]).toEqual([10, 10]);
    expect(await step(url(""), "restore", "r1:1", { items })).toEqual({
      status: 200,
      body: { outcome: "compensated" },
    });
    expect([await stockOf(a), await stockOf(b)]).toEqual([10, 10]);
  });

  test("a restore that would take the stock past 2^53-1 is refused and changes nothing; sent again once it fits, it is applied", async () => {
    const [a, b] = [await newItem(1, 10), await newItem(1, 10)];
    const items = [
      [a, 2],
      [b, 3],
    ];
    await step(url(""), "take", "r9:1", { items });
    await post(url(`/add/${b}/${Number.MAX_SAFE_INTEGER - 8}`));
    expect(await step(url(""), "restore", "r9:1", { items })).toEqual({
      status: 400,
      body: errorBody("invalid_input"),
    });
    expect([await stockOf(a), await stockOf(b)]).toEqual([8, Number.MAX_SAFE_INTEGER - 1]);
    await post(url(`/subtract/${b}/10`));
    expect(await step(url(""), "restore", "r9:1", { items })).toEqual({
      status: 200,
      body: { outcome: "compensated" },
    });
    expect([await stockOf(a), await stockOf(b)]).toEqual([10, Number.MAX_SAFE_INTEGER - 8]);
  });

  test("a take after its restore is 409 operation_cancelled and takes nothing", async () => {
    const a = await newItem(1, 10);
    await step(url(""), "take", "r2:1", { items: [[a, 2]] });
    await step(url(""), "restore", "r2:1", { items: [[a, 2]] });
    expect(await step(url(""), "take", "r2:1", { items: [[a, 2]] })).toEqual({
      status: 409,
      body: errorBody("operation_cancelled"),
    });
    expect(await stockOf(a)).toBe(10);
  });

  test("a restore that arrives before its take fences it: the take is 409 operation_cancelled and the stock is unchanged", async () => {
    const a = await newItem(1, 10);
    expect(await step(url(""), "restore", "r3:1", { items: [[a, 2]] })).toEqual({
      status: 200,
      body: { outcome: "cancelled" },
    });
    expect(await stockOf(a)).toBe(10);
    expect(await step(url(""), "take", "r3:1", { items: [[a, 2]] })).toEqual({
      status: 409,
      body: errorBody("operation_cancelled"),
    });
    expect(await stockOf(a)).toBe(10);
  });

  test("restore of a refused take changes nothing", async () => {
    const a = await newItem(1, 1);
    await step(url(""), "take", "r4:1", { items: [[a, 2]] });
    expect(await step(url(""), "restore", "r4:1", { items: [[a, 2]] })).toEqual({
      status: 200,
      body: { outcome: "refused" },
    });
    expect(await stockOf(a)).toBe(1);
  });

  test("a restore that names other items than its take is 400 and changes nothing", async () => {
    const [a, b] = [await newItem(1, 10), await newItem(1, 10)];
    await step(url(""), "take", "r5:1", { items: [[a, 2]] });
    const before = await state();
    expect(await step(url(""), "restore", "r5:1", { items: [[b, 2]] })).toEqual({
      status: 400,
      body: errorBody("invalid_input"),
    });
    expect(without(await state(), keys.seq)).toEqual(without(before, keys.seq));
  });
});

describe("a call of many steps", () => {
  test("a bad step is refused alone: the good steps beside it are applied", async () => {
    const a = await newItem(1, 10);
    const steps = [
      { action: "take", op_id: "b1:1", items: [[a, 2]] },
      { action: "take", op_id: "b2:1", items: [[a, 0]] },
      { action: "take", op_id: "b3:1", items: [[a, 3]] },
    ];
    expect(await stepCall(url(""), { steps })).toEqual({
      status: 200,
      body: {
        answers: [
          { status: 200, outcome: "applied" },
          { status: 400, ...errorBody("invalid_input") },
          { status: 200, outcome: "applied" },
        ],
      },
    });
    expect(await stockOf(a)).toBe(5);
  });

  test("answers every step on its own, in the order sent, as if each had come alone", async () => {
    const [a, b] = [await newItem(1, 3), await newItem(1, 10)];
    const steps = [
      { action: "take", op_id: "m1:1", items: [[a, 2]] },
      { action: "take", op_id: "m2:1", items: [[a, 2]] },
      { action: "take", op_id: "m1:1", items: [[a, 2]] },
      { action: "take", op_id: "m3:1", items: [["no-such-item", 1]] },
      { action: "restore", op_id: "m4:1", items: [[b, 1]] },
      { action: "take", op_id: "m4:1", items: [[b, 1]] },
      { action: "take", op_id: "m5:1", items: [[a, 1]] },
    ];
    expect(await stepCall(url(""), { steps })).toEqual({
      status: 200,
      body: {
        answers: [
          { status: 200, outcome: "applied" },
          { status: 409, ...errorBody("insufficient_stock") },
          // A repeat of the first step, in the same call: its first outcome, and nothing taken again.
          { status: 200, outcome: "applied" },
          { status: 404, ...errorBody("unknown_item") },
          // A restore before its take fences it: the take that follows is refused.
          { status: 200, outcome: "cancelled" },
          { status: 409, ...errorBody("operation_cancelled") },
          { status: 200, outcome: "applied" },
        ],
      },
    });
    expect([await stockOf(a), await stockOf(b)]).toEqual([0, 10]);
  });
});
