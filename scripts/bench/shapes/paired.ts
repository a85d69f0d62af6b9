/**
 * Two shapes measured in turns, so that a fraction of one over the other compares like with like.
 * A machine's speed drifts over a run (docs/benchmarks.md#comparing-versions): measured one after
 * the other, the skeleton could meet a fast stretch and uniform a slow one. In turns of a few
 * seconds, in the order A B B A A B B A, a drift weighs on both alike. Both stacks are up for the
 * whole time, and the one at rest takes a little of the other's windows (its upkeep timers), which
 * makes the ratio of uniform to the skeleton read slightly high (docs/benchmarks.md#the-benchmark).
 */
import type { ShapeResult } from "../report";
import type { PreparedShape, ShapeContext } from "./measure";

/** Measured windows of each shape: the run's seconds are split among them. */
export const WINDOWS_PER_SHAPE = 4;

/** Which shape each window goes to: 0, 1, 1, 0, 0, 1, 1, 0 … (`windows` of each). */
export function abbaOrder(windows: number): Array<0 | 1> {
  return Array.from({ length: 2 * windows }, (_, i) => (i % 4 === 0 || i % 4 === 3 ? 0 : 1));
}

export async function measurePaired(
  shapes: readonly [PreparedShape, PreparedShape],
  ctx: ShapeContext,
): Promise<ShapeResult[]> {
  try {
    for (const prepared of shapes) await prepared.windows.warmUp(ctx.warmupSeconds);
    const windowSeconds = ctx.seconds / WINDOWS_PER_SHAPE;
    const order = abbaOrder(WINDOWS_PER_SHAPE);
    const measuredSoFar: [number, number] = [0, 0];
    for (const which of order) {
      const prepared = shapes[which];
      measuredSoFar[which] += 1;
      await prepared.windows.measure(windowSeconds, `${prepared.shape} ${measuredSoFar[which]}/${WINDOWS_PER_SHAPE}`);
    }
    const turns = order
      .slice(0, 4)
      .map((which) => shapes[which].shape)
      .join(", ");
    const results: ShapeResult[] = [];
    for (const [i, prepared] of shapes.entries()) {
      const other = shapes[1 - i]!.shape;
      const result = await prepared.finish();
      const note = `measured in ${WINDOWS_PER_SHAPE} windows of ${windowSeconds.toFixed(1)} s, in turns with ${other} (${turns}, …)`;
      results.push({ ...result, notes: [...result.notes, note] });
    }
    return results;
  } finally {
    for (const prepared of shapes) prepared.close();
  }
}
