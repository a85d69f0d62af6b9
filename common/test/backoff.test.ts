import { describe, expect, test } from "bun:test";
import { backoffMs } from "@checkout/common/backoff";

describe("backoffMs", () => {
  test("without jitter doubles from the first wait up to the cap, and stays there", () => {
    const curve = { firstMs: 20, capMs: 100 };
    expect([0, 1, 2, 3, 4, 50].map((attempt) => backoffMs(attempt, curve))).toEqual([20, 40, 80, 100, 100, 100]);
  });
});
