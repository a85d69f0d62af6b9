import { describe, expect, test } from "bun:test";
import { bucketOf, createHistogram, highestValueIn, mergeInto, percentileMs, recordMs, summarize } from "./histogram";

function histogramOf(valuesMs: readonly number[]) {
  const h = createHistogram();
  for (const v of valuesMs) recordMs(h, v);
  return h;
}

describe("percentiles", () => {
  test("an empty histogram reports zeros", () => {
    expect(summarize(createHistogram())).toEqual({ p50: 0, p95: 0, p99: 0, max: 0 });
  });

  test("small values (below 128 µs) are exact and use the nearest rank", () => {
    // 1 µs … 100 µs: the p-th percentile of 1..100 by nearest rank is p itself.
    const h = histogramOf(Array.from({ length: 100 }, (_, i) => (i + 1) / 1000));
    expect(percentileMs(h, 50)).toBe(0.05);
    expect(percentileMs(h, 95)).toBe(0.095);
    expect(percentileMs(h, 99)).toBe(0.099);
    expect(percentileMs(h, 100)).toBe(0.1);
  });

  test("large values are reported within 1/64 above the true value, never below", () => {
    const values = Array.from({ length: 1000 }, (_, i) => (i + 1) * 1.7); // 1.7 ms … 1700 ms
    const h = histogramOf(values);
    for (const p of [50, 90, 95, 99, 99.9]) {
      const exact = values[Math.ceil((p / 100) * values.length) - 1]!;
      const reported = percentileMs(h, p);
      expect(reported).toBeGreaterThanOrEqual(exact);
      expect(reported).toBeLessThanOrEqual(exact * (1 + 1 / 64));
    }
  });

  test("no percentile exceeds the exact maximum", () => {
    const h = histogramOf([3, 5, 1234.567]);
    expect(percentileMs(h, 100)).toBe(1234.567);
    expect(summarize(h).max).toBe(1234.567);
  });

  test("one slow outlier moves p99 of a hundred values but not p50", () => {
    const h = histogramOf([...Array.from({ length: 99 }, () => 10), 5_000]);
    expect(percentileMs(h, 50)).toBeCloseTo(10, 0);
    expect(percentileMs(h, 99)).toBeCloseTo(10, 0);
    expect(percentileMs(h, 100)).toBe(5_000);
  });

  test("a merged histogram answers as if every value had been recorded into one", () => {
    const a = histogramOf([1, 2, 3]);
    const b = histogramOf([100, 200]);
    mergeInto(a, b);
    expect(a.count).toBe(5);
    expect(percentileMs(a, 50)).toBeCloseTo(3, 1);
    expect(summarize(a).max).toBe(200);
  });
});

describe("buckets", () => {
  test("every value lies within its bucket and buckets grow with the value", () => {
    let previous = -1;
    for (let us = 0; us < 3_000_000; us += us < 5_000 ? 1 : 997) {
      const bucket = bucketOf(us);
      expect(bucket).toBeGreaterThanOrEqual(previous);
      expect(highestValueIn(bucket)).toBeGreaterThanOrEqual(us);
      if (bucket > 0) expect(highestValueIn(bucket - 1)).toBeLessThan(us);
      previous = bucket;
    }
  });

  test("negative and absurdly large latencies are clamped instead of corrupting the histogram", () => {
    const h = histogramOf([-1, 1e12]);
    expect(h.count).toBe(2);
    expect(percentileMs(h, 50)).toBe(0);
  });
});
