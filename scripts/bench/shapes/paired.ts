/**
 * Two shapes measured in turns, so that a fraction of one over the other compares like with like.
 * This machine's speed drifts over a run (the same code measures from 0.7 to 1.3 ms of CPU per
 * checkout from one run to the next): measured one after the other, the skeleton could meet a fast
 * stretch and uniform a slow one. In turns of a few seconds, in the order A B B A A B B A, a drift
 * weighs on both alike. Both stacks are up for the whole time, and the one at rest takes a little
 * of the other's windows: a real stack 40-60 ms of CPU per second (2-3 % of the machine, its upkeep
 * timers), as much right after one of its windows as long after, a skeleton stack 24 ms (1 %). The
 * ratio of uniform to the skeleton reads at most 1-2 % high for it.
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
