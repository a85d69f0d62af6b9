/**
 * How long `eventually` waits by default: what lands in milliseconds on an idle machine may take
 * seconds on a loaded one, and a test must never fail by time alone.
 */
const DEFAULT_TIMEOUT_MS = 30_000;
/** How often `eventually` checks by default. */
const DEFAULT_EVERY_MS = 10;

/**
 * Polls `check` until it returns true or `timeoutMs` passes, and returns its last answer: for an
 * outcome that lands after the answer (a compensation finishing, a saga ending).
 */
export async function eventually(
  check: () => Promise<boolean>,
  timeoutMs = DEFAULT_TIMEOUT_MS,
  everyMs = DEFAULT_EVERY_MS,
): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return true;
    await Bun.sleep(everyMs);
  }
  return check();
}
