import { describe, expect, test } from "bun:test";
import { emptyCounts } from "./load";
import type { ShapeResult } from "./report";
import { EXIT_COULD_NOT_RUN, EXIT_INVARIANT_VIOLATED, EXIT_OK, exitCodeOf } from "./run";

const measured = (ok: boolean): ShapeResult => ({
  shape: "uniform",
  clients: 1,
  seconds: 1,
  elapsedSeconds: 1,
  throughput: 1,
  latency: { p50: 0, p95: 0, p99: 0, max: 0 },
  counts: emptyCounts(),
  failureCodes: {},
  invariants: { ok, details: ok ? [] : ["x"] },
  notes: [],
});

describe("exitCodeOf", () => {
  test("0 when every shape ran and kept its invariants", () => {
    expect(exitCodeOf([measured(true), measured(true)])).toBe(EXIT_OK);
  });

  test("1 when an invariant was violated", () => {
    expect(exitCodeOf([measured(true), measured(false)])).toBe(EXIT_INVARIANT_VIOLATED);
  });

  test("2 when a shape could not run, even beside a violation", () => {
    expect(exitCodeOf([measured(false), { shape: "hot", error: "gateway down" }])).toBe(EXIT_COULD_NOT_RUN);
  });
});
