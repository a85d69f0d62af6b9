import { describe, expect, test } from "bun:test";
import { indexUpdates, keys, parseStored, storedValue } from "@checkout/common/keyspace";

describe("stored values", () => {
  test("are the entity's JSON with v added last, the same text JSON.stringify would give", () => {
    const hash = { stock: "9", price: "5", note: 'a "quoted" \\ value' };
    expect(storedValue(JSON.stringify(hash), 17)).toBe(JSON.stringify({ ...hash, v: "17" }));
    expect(storedValue("{}", 3)).toBe('{"v":"3"}');
  });

  test("read back as the fields and v; a missing key reads as null", () => {
    expect(parseStored(storedValue(JSON.stringify({ credit: "4" }), 8))).toEqual({ credit: "4", v: "8" });
    expect(parseStored(null)).toBeNull();
  });
});

describe("indexUpdates", () => {
  test("groups the changes into one SADD and one SREM per set, a key written twice counting with its last state", () => {
    const updates = indexUpdates("order", [
      [keys.order("a"), { saga_status: "running" }],
      [keys.order("b"), { saga_status: "running" }],
      [keys.order("b"), { saga_status: "done" }],
      [keys.order("c"), { saga_status: "failed" }],
    ]);
    expect(updates).toEqual([{ set: keys.activeSagas, add: ["a"], remove: ["b", "c"] }]);
  });

  test("is empty for a service without derived sets", () => {
    expect(indexUpdates("stock", [["item:1", { stock: "1" }]])).toEqual([]);
  });
});
