import { describe, expect, test } from "bun:test";
import { atOrBefore, formatStreamId, nextStreamId, parseStreamId } from "@checkout/common/durability";
import { backoffMs } from "@checkout/common/backoff";
import { CONFLICT_BACKOFF } from "@checkout/common/store";

describe("backoff after a WATCH conflict", () => {
  test("the first retry waits between half a millisecond and one", () => {
    expect(backoffMs(0, CONFLICT_BACKOFF, 0)).toBe(0.5);
    expect(backoffMs(0, CONFLICT_BACKOFF, 1)).toBe(1);
  });

  test("stays within half and all of a ceiling that doubles per attempt up to 50 ms", () => {
    for (let attempt = 0; attempt < 100; attempt++) {
      const ceiling = Math.min(50, 2 ** attempt);
      for (const random of [0, 0.25, 0.5, 0.999, 1]) {
        const wait = backoffMs(attempt, CONFLICT_BACKOFF, random);
        expect(wait).toBeGreaterThanOrEqual(ceiling / 2);
        expect(wait).toBeLessThanOrEqual(ceiling);
      }
    }
  });

  test("never exceeds 50 ms, however many attempts", () => {
    expect(backoffMs(10_000, CONFLICT_BACKOFF, 1)).toBe(50);
    expect(backoffMs(10_000, CONFLICT_BACKOFF, 0)).toBe(25);
  });

  test("with its real randomness stays within the bounds", () => {
    for (let i = 0; i < 1_000; i++) {
      const wait = backoffMs(3, CONFLICT_BACKOFF);
      expect(wait).toBeGreaterThanOrEqual(4);
      expect(wait).toBeLessThanOrEqual(8);
    }
  });
});

describe("stream ids", () => {
  test("parse and format back", () => {
    expect(parseStreamId("1733450000123-7")).toEqual([1733450000123, 7]);
    expect(formatStreamId(parseStreamId("1733450000123-7"))).toBe("1733450000123-7");
  });

  test("order by time, then by sequence within one millisecond, numerically", () => {
    expect(atOrBefore(parseStreamId("5-9"), parseStreamId("5-10"))).toBe(true);
    expect(atOrBefore(parseStreamId("5-10"), parseStreamId("5-9"))).toBe(false);
    expect(atOrBefore(parseStreamId("9-0"), parseStreamId("10-0"))).toBe(true);
    expect(atOrBefore(parseStreamId("10-0"), parseStreamId("9-99"))).toBe(false);
    expect(atOrBefore(parseStreamId("7-3"), parseStreamId("7-3"))).toBe(true);
  });

  test("the id after one is the first a trim up to it keeps", () => {
    expect(formatStreamId(nextStreamId(parseStreamId("5-9")))).toBe("5-10");
    expect(atOrBefore(nextStreamId(parseStreamId("5-9")), parseStreamId("5-9"))).toBe(false);
  });
});
