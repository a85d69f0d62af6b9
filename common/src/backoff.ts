/**
 * The one backoff of the code base: a wait that doubles per attempt from `firstMs` up to `capMs`.
 * Jittered (`jitter: true`): anywhere from half the wait to all of it, so that retries that collided
 * (WATCH conflicts) do not collide again in step. Each caller names its curve as a constant beside it.
 */
export type Backoff = { firstMs: number; capMs: number; jitter?: boolean };

/** How long to wait before retry number `attempt` (0 for the first retry). `random`: in [0, 1]. */
export function backoffMs(attempt: number, curve: Backoff, random = Math.random()): number {
  const ceiling = Math.min(curve.capMs, curve.firstMs * 2 ** attempt);
  return curve.jitter ? ceiling * (0.5 + random / 2) : ceiling;
}
