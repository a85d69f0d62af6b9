/**
 * skeleton: the ceiling. The uniform shape's HTTP pattern (POST /orders/checkout/{id}, C clients,
 * no think time) against the skeleton services (scripts/bench/skeleton/), which keep the topology
 * and drop the logic. There is no state to verify; every answer must be a 2xx.
 */
import type { ShapeResult } from "../report";
import {
  batchIds,
  checkoutWindows,
  measureAlone,
  preparedShape,
  shapeResult,
  type PreparedShape,
  type ShapeContext,
} from "./measure";

/** The skeleton keeps no orders, so a modest set of ids is cycled through instead of one per request. */
const SKELETON_DISTINCT_IDS = 100_000;
/** A count bound for the loop; at this machine's ceiling the time bound always comes first. */
const SKELETON_MAX_REQUESTS = 10_000_000;

export function runSkeleton(ctx: ShapeContext): Promise<ShapeResult> {
  return measureAlone(prepareSkeleton(ctx), ctx);
}

export function prepareSkeleton(ctx: ShapeContext): PreparedShape {
  const windows = checkoutWindows("skeleton", ctx.baseUrl, batchIds(SKELETON_DISTINCT_IDS), ctx.clients, {
    maxRequests: SKELETON_MAX_REQUESTS,
    signal: ctx.signal,
  });
  return preparedShape("skeleton", windows, undefined, async () => {
    const { load } = windows.result();
    const failed = load.answered - load.counts["2xx"];
    const details = failed === 0 ? [] : [`expectation: ${failed} skeleton checkouts were not answered 2xx`];
    return shapeResult("skeleton", ctx.clients, ctx.seconds, load, { ok: details.length === 0, details }, []);
  });
}
