/**
 * A fixed-size latency histogram in the manner of HdrHistogram: values are recorded in whole
 * microseconds into buckets whose width grows with the value, so that every recorded latency is
 * known to within 1/64 (about 1.6 %) of itself. Recording is a few integer operations and no
 * allocation, which matters when the load generator shares the CPU with the system it measures.
 */

/** Values below 2^SUB_BUCKET_BITS µs get a bucket each; above, each power of two gets HALF buckets. */
const SUB_BUCKET_BITS = 7;
const SUB_BUCKETS = 1 << SUB_BUCKET_BITS;
const HALF = SUB_BUCKETS >> 1;
/** The largest value kept exactly; anything slower is clamped into the last bucket (its exact max is kept aside). */
const MAX_TRACKABLE_US = 2 ** 31 - 1;
const BUCKET_COUNT = SUB_BUCKETS + (31 - SUB_BUCKET_BITS) * HALF;

export type Histogram = {
  readonly buckets: Uint32Array;
  count: number;
  maxUs: number;
};

export type LatencySummaryMs = { p50: number; p95: number; p99: number; max: number };

export function createHistogram(): Histogram {
  return { buckets: new Uint32Array(BUCKET_COUNT), count: 0, maxUs: 0 };
}

export function bucketOf(us: number): number {
  const v = Math.min(Math.max(Math.floor(us), 0), MAX_TRACKABLE_US);
  if (v < SUB_BUCKETS) return v;
  const shift = 31 - Math.clz32(v) - (SUB_BUCKET_BITS - 1);
  return SUB_BUCKETS + (shift - 1) * HALF + ((v >>> shift) - HALF);
}

/** The largest value (µs) that falls into `bucket`: what a percentile reports, never an underestimate. */
export function highestValueIn(bucket: number): number {
  if (bucket < SUB_BUCKETS) return bucket;
  const shift = Math.floor((bucket - SUB_BUCKETS) / HALF) + 1;
  const top = ((bucket - SUB_BUCKETS) % HALF) + HALF;
  return (top + 1) * 2 ** shift - 1;
}

export function recordMs(h: Histogram, ms: number): void {
  const us = ms * 1000;
  h.buckets[bucketOf(us)]! += 1;
  h.count += 1;
  if (us > h.maxUs) h.maxUs = us;
}

export function mergeInto(target: Histogram, source: Histogram): void {
  for (let i = 0; i < BUCKET_COUNT; i++) target.buckets[i]! += source.buckets[i]!;
  target.count += source.count;
  target.maxUs = Math.max(target.maxUs, source.maxUs);
}

/**
 * The nearest-rank percentile in milliseconds: the smallest recorded value at or below which at
 * least `p` percent of the values lie, reported as its bucket's upper bound but never above the
 * exact maximum. 0 for an empty histogram.
 */
export function percentileMs(h: Histogram, p: number): number {
  if (h.count === 0) return 0;
  const rank = Math.max(1, Math.ceil((Math.min(Math.max(p, 0), 100) / 100) * h.count));
  let seen = 0;
  for (let bucket = 0; bucket < BUCKET_COUNT; bucket++) {
    seen += h.buckets[bucket]!;
    if (seen >= rank) return Math.min(highestValueIn(bucket), h.maxUs) / 1000;
  }
  return h.maxUs / 1000;
}

export function summarize(h: Histogram): LatencySummaryMs {
  return {
    p50: percentileMs(h, 50),
    p95: percentileMs(h, 95),
    p99: percentileMs(h, 99),
    max: h.maxUs / 1000,
  };
}
