/** What the benchmark prints and writes: the live progress line, the result table, the JSON file. */
import type { LatencySummaryMs } from "./histogram";
import { decided, type LoadProgress, type StatusCounts } from "./load";
import type { MachineCpu } from "./machine";
import type { InvariantReport } from "./verify";

export type ShapeName = "skeleton" | "uniform" | "hot" | "mixed" | "soak";

export type ShapeResult = {
  shape: ShapeName;
  clients: number;
  /** The configured duration; `elapsedSeconds` is how long the checkouts actually took. */
  seconds: number;
  elapsedSeconds: number;
  /** Decided checkouts (2xx and 4xx) per second of elapsed time. */
  throughput: number;
  latency: LatencySummaryMs;
  counts: StatusCounts;
  /** Non-2xx answers by error code. */
  failureCodes: Record<string, number>;
  invariants: InvariantReport;
  /** Facts about the run a reader needs to interpret it (e.g. the orders ran out). */
  notes: string[];
  /** The whole machine's CPU while the checkouts ran (Linux only). */
  cpu?: MachineCpu;
  /** This shape's throughput over the skeleton's, measured in the same run. */
  skeletonFraction?: number;
};

/** A TTY gets a line rewritten every second; a log (CI) gets a full line every other second. */
const LOG_LINE_EVERY_TICKS = 2;

export function progressPrinter(label: string, out: NodeJS.WriteStream = process.stderr) {
  let ticks = 0;
  let lastDecided = 0;
  let lastElapsedMs = 0;
  let printedOnTty = false;
  return {
    onProgress(p: LoadProgress): void {
      ticks += 1;
      const decidedSoFar = decided(p.counts);
      const rate = ((decidedSoFar - lastDecided) * 1000) / Math.max(p.elapsedMs - lastElapsedMs, 1);
      lastDecided = decidedSoFar;
      lastElapsedMs = p.elapsedMs;
      const line =
        `[${label}] ${(p.elapsedMs / 1000).toFixed(0).padStart(3)}s  ${rate.toFixed(0).padStart(6)} checkouts/s  ` +
        `answered ${p.answered}  refused ${p.counts["4xx"]}  errors ${p.counts["5xx"] + p.counts.network + p.counts.other}`;
      if (out.isTTY) {
        out.write(`\r\x1b[K${line}`);
        printedOnTty = true;
      } else if (ticks % LOG_LINE_EVERY_TICKS === 0) {
        out.write(`${line}\n`);
      }
    },
    done(): void {
      if (printedOnTty) out.write("\n");
    },
  };
}

const fixed = (n: number, digits = 1): string => n.toFixed(digits);

/** The human-readable report of one shape. */
export function formatResult(r: ShapeResult): string {
  const lines = [
    `── ${r.shape} ─ ${r.clients} clients, ${fixed(r.elapsedSeconds)} s`,
    `  throughput   ${fixed(r.throughput)} checkouts/s` +
      (r.skeletonFraction === undefined ? "" : `  (${fixed(r.skeletonFraction * 100)} % of the skeleton)`),
    `  latency ms   p50 ${fixed(r.latency.p50)}  p95 ${fixed(r.latency.p95)}  p99 ${fixed(r.latency.p99)}  max ${fixed(r.latency.max)}`,
    `  answers      2xx ${r.counts["2xx"]}  4xx ${r.counts["4xx"]}  5xx ${r.counts["5xx"]}  network ${r.counts.network}` +
      (r.counts.other ? `  other ${r.counts.other}` : ""),
  ];
  if (r.cpu)
    lines.push(
      `  machine cpu  ${fixed(r.cpu.msPerCheckout, 2)} ms per checkout, ${fixed(r.cpu.busyShare * 100, 0)} % busy (all processes)`,
    );
  const codes = Object.entries(r.failureCodes).sort((a, b) => b[1] - a[1]);
  if (codes.length > 0) lines.push(`  failures     ${codes.map(([code, n]) => `${code} ${n}`).join("  ")}`);
  for (const note of r.notes) lines.push(`  note         ${note}`);
  lines.push(`  invariants   ${r.invariants.ok ? "OK" : "VIOLATED"}`);
  for (const detail of r.invariants.details) lines.push(`    ${detail}`);
  return lines.join("\n");
}

/** A shape that could not be measured at all (its data could not be prepared, its stack did not start...). */
export type ShapeFailure = { shape: ShapeName; error: string };
export type ShapeOutcome = ShapeResult | ShapeFailure;

export function isFailure(outcome: ShapeOutcome): outcome is ShapeFailure {
  return "error" in outcome;
}

/** Every measured shape but the skeleton, with its throughput as a fraction of the skeleton's. */
export function withSkeletonFractions(outcomes: readonly ShapeOutcome[]): ShapeOutcome[] {
  const skeleton = outcomes.find((o): o is ShapeResult => !isFailure(o) && o.shape === "skeleton");
  if (!skeleton || skeleton.throughput <= 0) return [...outcomes];
  return outcomes.map((o) =>
    isFailure(o) || o.shape === "skeleton" ? o : { ...o, skeletonFraction: o.throughput / skeleton.throughput },
  );
}

/** One line comparing the shapes with the skeleton, or undefined when no skeleton was measured. */
export function formatFractions(outcomes: readonly ShapeOutcome[]): string | undefined {
  const compared = outcomes.filter(
    (o): o is ShapeResult & { skeletonFraction: number } => !isFailure(o) && o.skeletonFraction !== undefined,
  );
  if (compared.length === 0) return undefined;
  return `as a fraction of the skeleton: ${compared.map((r) => `${r.shape} ${fixed(r.skeletonFraction * 100)} %`).join(", ")}`;
}
