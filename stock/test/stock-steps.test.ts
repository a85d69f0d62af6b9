/** The stock service's saga steps over real HTTP, on its own real Redis: take, restore, and calls of many. */
import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { keys } from "@checkout/common/keyspace";
import { internalAuthorization, STEPS_PATH } from "@checkout/common/internal";
import { call, errorBody, post, step, stepCall, TEST_INTERNAL_SECRET } from "../../common/test/support/http";
import { without } from "../../common/test/support/redis-state";
import { stockOnItsOwnRedis } from "./support/stock-service";

/** Real servers on a shared machine: generous, so that load elsewhere never fails a test by time alone. */
setDefaultTimeout(30_000);

const { url, state, newItem, stockOf } = stockOnItsOwnRedis();

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

  test(
    "a restore that would take the stock past 2^53-1 is refused and changes nothing; sent again " +
      "once it fits, it is applied",
    async () => {
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
    },
  );

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
