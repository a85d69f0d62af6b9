import { describe, expect, test } from "bun:test";
import { SERVICES, type ServiceName } from "../../common/src/config";
import { lastHalfTrend, slope, type Sample } from "./shapes/soak";

const each = (value: number) => Object.fromEntries(SERVICES.map((s) => [s, value])) as Record<ServiceName, number>;
/** Samples every 5 s for `seconds`, all three Redises reading `value(at)`. */
const run = (seconds: number, value: (at: number) => number): Sample[] =>
  Array.from({ length: seconds / 5 + 1 }, (_, i) => ({
    at: i * 5,
    checkouts: 500 * i * 5,
    memory: each(value(i * 5)),
    keys: each(value(i * 5)),
  }));
/** What 500 checkouts a second write: one record each, a minute. */
const WRITTEN_PER_MINUTE = 500 * 60;

describe("soak trends", () => {
  test("the slope is the least-squares one", () => {
    expect(slope([0, 1, 2, 3], [1, 3, 5, 7])).toBeCloseTo(2);
    expect(slope([0, 1, 2, 3], [5, 4, 6, 5])).toBeCloseTo(0.2);
    expect(slope([1], [5])).toBe(0);
  });

  test("records that expire level off: flat over the last half, though they grew over the first", () => {
    const trend = lastHalfTrend(
      run(300, (at) => 10_000 + 500 * Math.min(at, 70)),
      (s) => s.keys.stock,
      WRITTEN_PER_MINUTE,
    );
    expect(trend).toMatchObject({ perMinute: 0, flat: true });
  });

  test("records kept for good grow all along: not flat", () => {
    const trend = lastHalfTrend(
      run(300, (at) => 10_000 + 500 * at),
      (s) => s.keys.stock,
      WRITTEN_PER_MINUTE,
    );
    expect(trend.flat).toBe(false);
    expect(trend.perMinute).toBeCloseTo(WRITTEN_PER_MINUTE);
  });

  test("a series that is written nothing new (the orders) is flat while it stays near its mean", () => {
    expect(
      lastHalfTrend(
        run(300, (at) => 20_000 + (at % 20)),
        (s) => s.keys.order,
      ).flat,
    ).toBe(true);
    expect(
      lastHalfTrend(
        run(300, (at) => 20_000 + 50 * at),
        (s) => s.keys.order,
      ).flat,
    ).toBe(false);
  });
});
