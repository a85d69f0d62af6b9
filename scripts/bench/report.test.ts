import { describe, expect, test } from "bun:test";
import { emptyCounts } from "./load";
import {
  formatFractions,
  formatResult,
  progressPrinter,
  withSkeletonFractions,
  type ShapeOutcome,
  type ShapeResult,
} from "./report";

function result(shape: ShapeResult["shape"], throughput: number, ok = true): ShapeResult {
  return {
    shape,
    clients: 64,
    seconds: 10,
    elapsedSeconds: 10,
    throughput,
    latency: { p50: 1, p95: 2, p99: 3, max: 4 },
    counts: { ...emptyCounts(), "2xx": throughput * 10 },
    failureCodes: {},
    invariants: ok ? { ok: true, details: [] } : { ok: false, details: ["stock: item 1: lost 1"] },
    notes: [],
  };
}

describe("skeleton fractions", () => {
  test("every real shape is reported as a fraction of the skeleton measured in the same run", () => {
    const outcomes = withSkeletonFractions([
      result("skeleton", 2000),
      result("uniform", 500),
      { shape: "hot", error: "down" },
    ]);
    expect(outcomes.map((o) => ("skeletonFraction" in o ? o.skeletonFraction : undefined))).toEqual([
      undefined,
      0.25,
      undefined,
    ]);
    expect(formatFractions(outcomes)).toBe("as a fraction of the skeleton: uniform 25.0 %");
  });

  test("without a skeleton there is nothing to compare with", () => {
    const outcomes: ShapeOutcome[] = [result("uniform", 500)];
    expect(withSkeletonFractions(outcomes)).toEqual(outcomes);
    expect(formatFractions(outcomes)).toBeUndefined();
  });
});

describe("formatResult", () => {
  test("names the violated invariants under the figures", () => {
    const text = formatResult({ ...result("mixed", 100, false), failureCodes: { insufficient_stock: 3 } });
    expect(text).toContain("throughput   100.0 checkouts/s");
    expect(text).toContain("failures     insufficient_stock 3");
    expect(text).toContain("invariants   VIOLATED\n    stock: item 1: lost 1");
  });

  test("gives the machine's CPU per checkout when it was measured, and nothing where it was not", () => {
    expect(formatResult({ ...result("uniform", 100), cpu: { busyShare: 0.912, msPerCheckout: 1.5234 } })).toContain(
      "machine cpu  1.52 ms per checkout, 91 % busy (all processes)",
    );
    expect(formatResult(result("uniform", 100))).not.toContain("machine cpu");
  });
});

describe("progressPrinter", () => {
  function fakeStream(isTTY: boolean) {
    const writes: string[] = [];
    return { writes, stream: { isTTY, write: (s: string) => writes.push(s) } as unknown as NodeJS.WriteStream };
  }
  const tick = (answered: number, elapsedMs: number) => ({
    answered,
    elapsedMs,
    counts: { ...emptyCounts(), "2xx": answered },
  });

  test("a log gets a whole line every other second, so CI output stays readable", () => {
    const { writes, stream } = fakeStream(false);
    const printer = progressPrinter("uniform", stream);
    printer.onProgress(tick(100, 1000));
    printer.onProgress(tick(300, 2000));
    printer.done();
    expect(writes).toHaveLength(1);
    expect(writes[0]).toMatch(/^\[uniform\] +2s +200 checkouts\/s +answered 300 +refused 0 +errors 0\n$/);
  });

  test("a terminal gets one line rewritten in place every second, ended when the run ends", () => {
    const { writes, stream } = fakeStream(true);
    const printer = progressPrinter("hot", stream);
    printer.onProgress(tick(100, 1000));
    printer.onProgress(tick(300, 2000));
    printer.done();
    expect(writes).toHaveLength(3);
    expect(writes[0]!.startsWith("\r\x1b[K[hot]")).toBe(true);
    expect(writes[2]).toBe("\n");
  });
});
