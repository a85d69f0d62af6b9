import { describe, expect, test } from "bun:test";
import { entityId, nonNegativeInteger } from "@checkout/common/http";
import { MAX_INTEGER } from "@checkout/common/limits";

const amount = nonNegativeInteger("amount");
const id = entityId("item_id");

describe("nonNegativeInteger", () => {
  test.each([
    ["0", 0],
    ["42", 42],
    ["9007199254740991", MAX_INTEGER],
  ])("accepts %p as %p", (raw, value) => {
    expect(amount.safeParse(raw)).toEqual({ success: true, data: value });
  });

  test.each(["-1", "-0", "1.5", "abc", "", "9007199254740992", "99999999999999999999", "1e3", " 1", "0x10"])(
    "rejects %p",
    (raw) => {
      expect(amount.safeParse(raw).success).toBe(false);
    },
  );

  test("names the parameter in its message", () => {
    const result = amount.safeParse("abc");
    expect(result.success).toBe(false);
    if (!result.success) expect(result.error.issues[0]?.message).toContain("amount");
  });

  test("with a minimum of 1 rejects 0", () => {
    expect(nonNegativeInteger("quantity", 1).safeParse("0").success).toBe(false);
    expect(nonNegativeInteger("quantity", 1).safeParse("1")).toEqual({ success: true, data: 1 });
  });
});

describe("entityId", () => {
  test.each(["a", "item_1", "0", "f81d4fae-7dec-11d0-a765-00a0c91e6bf6", "x".repeat(64)])("accepts %p", (raw) => {
    expect(id.safeParse(raw).success).toBe(true);
  });

  test.each(["a/b", "", "x".repeat(65), "a b", "a:b", "é"])("rejects %p", (raw) => {
    expect(id.safeParse(raw).success).toBe(false);
  });
});
