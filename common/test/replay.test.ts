import { describe, expect, test } from "bun:test";
import type { LogRecord } from "@checkout/common/log";
import { foldLatest, isNewer, type LatestState } from "@checkout/common/replay";

const at = "2026-11-26T05:12:01.004Z";
const records: LogRecord[] = [
  { seq: 1, at, op: "stock.create", writes: { "item:a": { stock: "0", price: "5" } } },
  { seq: 2, at, op: "stock.add", writes: { "item:a": { stock: "10", price: "5" } } },
  { seq: 3, at, op: "stock.create", writes: { "item:b": { stock: "0", price: "7" } } },
  { seq: 5, at, op: "stock.take", writes: { "item:a": { stock: "8", price: "5" }, "op:o:1": { state: "applied" } } },
  { seq: 4, at, op: "stock.add", writes: { "item:b": { stock: "3", price: "7" } } },
  {
    seq: 6,
    at,
    op: "stock.restore",
    writes: { "item:a": { stock: "10", price: "5" }, "op:o:1": { state: "compensated" } },
  },
];

const expected = new Map<string, LatestState>([
  ["item:a", { seq: 6, hash: { stock: "10", price: "5" } }],
  ["item:b", { seq: 4, hash: { stock: "3", price: "7" } }],
  ["op:o:1", { seq: 6, hash: { state: "compensated" } }],
]);

function* permutations<T>(items: T[]): Generator<T[]> {
  if (items.length <= 1) return yield items;
  for (let i = 0; i < items.length; i++) {
    for (const rest of permutations([...items.slice(0, i), ...items.slice(i + 1)])) yield [items[i]!, ...rest];
  }
}

describe("foldLatest", () => {
  test("keeps, for every key, the state of the highest sequence number", () => {
    expect(foldLatest(records)).toEqual(expected);
  });

  test("gives the same fold whatever the order of the records", () => {
    let orders = 0;
    for (const order of permutations(records)) {
      expect(foldLatest(order)).toEqual(expected);
      orders++;
    }
    expect(orders).toBe(720);
  });

  test("folded in chunks into one map gives the fold of the whole", () => {
    const into = foldLatest(records.slice(3));
    foldLatest(records.slice(0, 3), into);
    expect(into).toEqual(expected);
  });

  test("of a record repeated changes nothing", () => {
    expect(foldLatest([...records, ...records])).toEqual(expected);
  });
});

describe("isNewer", () => {
  test("a key that does not exist takes any line", () => {
    expect(isNewer(1, null)).toBe(true);
  });

  test("a key takes a line only when the line's number is higher than the key's", () => {
    expect(isNewer(5, 4)).toBe(true);
    expect(isNewer(5, 5)).toBe(false);
    expect(isNewer(5, 6)).toBe(false);
  });
});
