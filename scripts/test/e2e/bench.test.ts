/**
 * `bun run bench --start-stack --shape all`, briefly: the benchmark a team runs against the system
 * starts its own stacks, measures the skeleton and uniform in turns, then hot and mixed, checks every
 * shape's invariants and exits 0. Only that it runs and what it reports are checked here; its figures
 * belong to the benchmark, not to a timed test.
 */
import { afterAll, expect, setDefaultTimeout, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { REPO_ROOT } from "../../../common/src/config";
import type { ShapeOutcome, ShapeResult } from "../../bench/report";
import { WINDOWS_PER_SHAPE } from "../../bench/shapes/paired";

/** Two stacks started and stopped, 100 000 items and users prepared, four shapes verified. */
setDefaultTimeout(180_000);

const scratch = mkdtempSync(join(tmpdir(), "bench-test-"));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

test("bun run bench --start-stack --shape all runs every shape, keeps every invariant and exits 0", async () => {
  const jsonFile = join(scratch, "results.json");
  const bench = Bun.spawn(
    [
      process.execPath,
      "scripts/bench.ts",
      "--start-stack",
      "--shape",
      "all",
      "--seconds",
      "2",
      "--warmup",
      "1",
      "--orders",
      "20000",
      "--json",
      jsonFile,
    ],
    { cwd: REPO_ROOT, stdout: "pipe", stderr: "pipe" },
  );
  const [stdout, stderr, exitCode] = await Promise.all([
    new Response(bench.stdout).text(),
    new Response(bench.stderr).text(),
    bench.exited,
  ]);
  if (exitCode !== 0) console.error(stdout, stderr);
  expect(exitCode).toBe(0);

  const outcomes = (await Bun.file(jsonFile).json()) as ShapeOutcome[];
  expect(outcomes.map((o) => o.shape)).toEqual(["skeleton", "uniform", "hot", "mixed"]);
  const results = outcomes as ShapeResult[];
  for (const r of results) {
    expect(r.invariants).toEqual({ ok: true, details: [] });
    expect(r.counts["5xx"] + r.counts.network).toBe(0);
  }
  const [skeleton, uniform, hot] = results as [ShapeResult, ShapeResult, ShapeResult];
  for (const r of [skeleton, uniform]) expect(r.notes.at(-1)).toContain(`measured in ${WINDOWS_PER_SHAPE} windows`);
  expect(skeleton.throughput).toBeGreaterThan(0);
  expect(uniform.skeletonFraction).toBe(uniform.throughput / skeleton.throughput);
  expect(hot.counts).toMatchObject({ "2xx": 100, "4xx": 900 });
  expect(stdout).toContain("as a fraction of the skeleton: uniform");
});
