import { describe, expect, test } from "bun:test";
import { planBatch, watchedKeys, type BatchEntry } from "../src/batch";
import { badInput } from "../src/errors";
import { parseRecord } from "../src/log";

const AT = "2026-11-26T05:00:00.000Z";

/** A transaction that takes `n` from counter `key`, refusing (no write) below zero. */
const take = (key: string, n: number): BatchEntry => ({
  op: "test.take",
  watched: [key],
  decide: (snapshot) => {
    const have = Number(snapshot.get(key)?.n ?? 0);
    return have < n ? { result: "refused" } : { result: have - n, writes: { [key]: { n: String(have - n) } } };
  },
});

describe("planBatch", () => {
  test("decides transactions on one key in order, each seeing the writes before it", () => {
    const plan = planBatch([take("k", 2), take("k", 2), take("k", 2)], new Map([["k", { n: "5", v: "1" }]]), 10, AT);
    expect(plan.outcomes.map((o) => (o.ok ? o.result : o.error))).toEqual([3, 1, "refused"]);
    expect(plan.writes).toEqual([
      { key: "k", hash: { n: "3" }, seq: 10, json: '{"n":"3"}' },
      { key: "k", hash: { n: "1" }, seq: 11, json: '{"n":"1"}' },
    ]);
  });

  test("gives each transaction its own sequence number and one log line with its absolute writes", () => {
    const plan = planBatch(
      [take("a", 1), take("b", 1)],
      new Map([
        ["a", { n: "1" }],
        ["b", { n: "1" }],
      ]),
      7,
      AT,
    );
    const lines = plan.outcomes.map((o) => (o.ok && o.line ? parseRecord(o.line) : null));
    expect(lines).toEqual([
      { seq: 7, at: AT, op: "test.take", writes: { a: { n: "0" } } },
      { seq: 8, at: AT, op: "test.take", writes: { b: { n: "0" } } },
    ]);
  });

  test("a later decision sees the version an earlier one wrote", () => {
    let seen: string | undefined;
    const peek: BatchEntry = {
      op: "test.peek",
      watched: ["k"],
      decide: (s) => {
        seen = s.get("k")?.v;
        return { result: null };
      },
    };
    planBatch([take("k", 1), peek], new Map([["k", { n: "1", v: "3" }]]), 20, AT);
    expect(seen).toBe("20");
  });

  test("a decision that throws fails alone and writes nothing", () => {
    const broken: BatchEntry = {
      op: "test.broken",
      watched: ["k"],
      decide: () => {
        throw badInput("no");
      },
    };
    const plan = planBatch([broken, take("k", 1)], new Map([["k", { n: "1" }]]), 1, AT);
    expect(plan.outcomes[0]).toMatchObject({ ok: false });
    expect(plan.outcomes[1]).toMatchObject({ ok: true, result: 0, seq: 2 });
    expect(plan.writes).toHaveLength(1);
  });

  test("a read-only decision has no line and no write", () => {
    const plan = planBatch([take("k", 5)], new Map([["k", null]]), 1, AT);
    expect(plan.outcomes).toEqual([{ ok: true, result: "refused", seq: 1, line: null }]);
    expect(plan.writes).toEqual([]);
  });

  test("a decision sees only its own watched keys, missing ones as null", () => {
    let snapshotKeys: string[] = [];
    const look: BatchEntry = {
      op: "t",
      watched: ["x", "y"],
      decide: (s) => {
        snapshotKeys = [...s.keys()];
        return { result: [s.get("x"), s.get("y")] };
      },
    };
    const plan = planBatch(
      [look],
      new Map([
        ["x", { n: "1" }],
        ["z", { n: "2" }],
      ]),
      1,
      AT,
    );
    expect(snapshotKeys).toEqual(["x", "y"]);
    expect(plan.outcomes[0]).toMatchObject({ ok: true, result: [{ n: "1" }, null] });
  });
});

test("watchedKeys lists each key once, in first-seen order", () => {
  expect(watchedKeys([take("b", 1), take("a", 1), take("b", 1)])).toEqual(["b", "a"]);
});
