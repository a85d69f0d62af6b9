/**
 * Polls `check` until it returns true or `timeoutMs` passes, and returns its last answer: for an
 * outcome that lands after the answer (a compensation finishing, a saga ending).
 */
export async function eventually(check: () => Promise<boolean>, timeoutMs = 5_000, everyMs = 10): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return true;
    await Bun.sleep(everyMs);
  }
  return check();
}
