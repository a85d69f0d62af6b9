/**
 * The unfinished sagas, for an operator (`GET /internal/sagas` on an order process's own port, with
 * the internal secret; never through the gateway): each one's order, attempt, state, step, lease
 * holder, age and last error, and the counts by state. Pure: the order service reads, this shapes.
 */
import { attemptStart } from "@checkout/common/retention";
import type { Order } from "./order-rules";
import { isUnfinished } from "./saga-record";

/** The most sagas listed in one answer; the counts cover them all. */
export const MAX_SAGAS_LISTED = 1_000;

export type SagaInFlight = {
  order_id: string;
  attempt: number;
  state: string;
  /** Running: 0 (the forward steps run from the first); compensating: the last step to undo. */
  step: number;
  lease_holder: string;
  lease_left_ms: number;
  /** Since the attempt began (its operation id says when); null for an id that does not say. */
  age_ms: number | null;
  /** The decided failure, or the last failure of a step seen by this process (if it drives the saga). */
  last_error: string | null;
};

export type SagasInFlight = { counts: Record<string, number>; total: number; listed: number; sagas: SagaInFlight[] };

export function sagasInFlight(
  orders: ReadonlyArray<readonly [string, Order]>,
  now: number,
  lastStepError: (orderId: string) => string | undefined,
): SagasInFlight {
  const unfinished = orders.filter(([, o]) => isUnfinished(o.saga));
  const counts: Record<string, number> = { running: 0, compensating: 0 };
  for (const [, o] of unfinished) counts[o.saga.status] = (counts[o.saga.status] ?? 0) + 1;
  const sagas = unfinished
    .map(([orderId, { saga }]) => {
      const began = attemptStart(saga.opId);
      return {
        order_id: orderId,
        attempt: saga.attempt,
        state: saga.status,
        step: saga.step,
        lease_holder: saga.owner,
        lease_left_ms: Math.max(0, saga.leaseUntil - now),
        age_ms: began === null ? null : now - began,
        last_error: lastStepError(orderId) ?? (saga.error ? `${saga.error.code}: ${saga.error.message}` : null),
      };
    })
    .sort((a, b) => (b.age_ms ?? 0) - (a.age_ms ?? 0))
    .slice(0, MAX_SAGAS_LISTED);
  return { counts, total: unfinished.length, listed: sagas.length, sagas };
}
