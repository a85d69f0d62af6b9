import { describe, expect, test } from "bun:test";
import { formatRecord } from "@checkout/common/log";
import { conflictBackoffMs, orphanedLines } from "@checkout/common/store";

describe("conflictBackoffMs", () => {
  test("the first retry waits between half a millisecond and one", () => {
    expect(conflictBackoffMs(0, 0)).toBe(0.5);
    expect(conflictBackoffMs(0, 1)).toBe(1);
  });

  test("stays within half and all of a ceiling that doubles per attempt up to 50 ms", () => {
    for (let attempt = 0; attempt < 100; attempt++) {
      const ceiling = Math.min(50, 2 ** attempt);
      for (const random of [0, 0.25, 0.5, 0.999, 1]) {
        const wait = conflictBackoffMs(attempt, random);
        expect(wait).toBeGreaterThanOrEqual(ceiling / 2);
        expect(wait).toBeLessThanOrEqual(ceiling);
      }
    }
  });

  test("never exceeds 50 ms, however many attempts", () => {
    expect(conflictBackoffMs(10_000, 1)).toBe(50);
    expect(conflictBackoffMs(10_000, 0)).toBe(25);
  });

  test("with its real randomness stays within the bounds", () => {
    for (let i = 0; i < 1_000; i++) {
      const wait = conflictBackoffMs(3);
      expect(wait).toBeGreaterThanOrEqual(4);
      expect(wait).toBeLessThanOrEqual(8);
    }
  });
});

describe("orphanedLines", () => {
  const now = Date.parse("2026-11-26T05:12:10.000Z");
  const lineAt = (seq: number, at: string) => formatRecord({ seq, at, op: "stock.add", writes: { "item:1": { stock: "1", price: "1" } } });

  test("takes a bulk entry of many lines by the time of its first", () => {
    const chunk = lineAt(5, "2026-11-26T05:12:00.000Z") + lineAt(6, "2026-11-26T05:12:00.000Z");
    const fresh = lineAt(7, "2026-11-26T05:12:09.900Z") + lineAt(8, "2026-11-26T05:12:09.900Z");
    expect(orphanedLines({ "5": chunk, "7": fresh }, now, 1_000)).toEqual([["5", chunk]]);
  });

  test("picks only lines older than the age", () => {
    const pending = {
      "1": lineAt(1, "2026-11-26T05:12:00.000Z"), // 10 s old
      "2": lineAt(2, "2026-11-26T05:12:08.999Z"), // 1.001 s old
      "3": lineAt(3, "2026-11-26T05:12:09.000Z"), // exactly 1 s old
      "4": lineAt(4, "2026-11-26T05:12:09.500Z"), // 0.5 s old
    };
    expect(orphanedLines(pending, now, 1_000)).toEqual([
      ["1", pending["1"]],
      ["2", pending["2"]],
    ]);
  });

  test("ignores a line that does not parse", () => {
    expect(orphanedLines({ "1": "garbage", "2": lineAt(2, "2026-11-26T05:12:00.000Z").slice(0, 20) }, now, 1_000)).toEqual([]);
  });

  test("of nothing pending is nothing", () => {
    expect(orphanedLines({}, now, 1_000)).toEqual([]);
  });
});
