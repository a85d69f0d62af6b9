/**
 * Waiting until a stack's databases stop changing, and comparing two Redises key by key: for the
 * checks that look beneath the public API (a replay of the logs must equal the live data).
 */
import { SERVICES } from "../../../common/src/config";
import { keys } from "../../../common/src/keyspace";
import { eventually } from "../../../common/test/support/eventually";
import type { RedisState } from "../../../common/test/support/redis-state";
import type { TestStack } from "./test-stack";

/** Compensations and log appends finish within moments of the last answer; this much means one is stuck. */
export const QUIESCENCE_TIMEOUT_MS = 30_000;
/** Differences listed one by one in a failure message; the rest are counted. */
const LISTED_DIFFERENCES = 20;

/**
 * Resolves once no saga is running or compensating (the order Redis's `sagas:active` is empty) and
 * every committed change has reached its service's log (each log writer has trimmed its stream empty).
 * Throws naming what is still busy after `timeoutMs`.
 */
export async function untilQuiescent(shop: TestStack, timeoutMs = QUIESCENCE_TIMEOUT_MS): Promise<void> {
  const busy = async (): Promise<string[]> => {
    const found: string[] = [];
    const active = await shop.redis("order").scard(keys.activeSagas);
    if (active > 0) found.push(`${active} sagas still active`);
    for (const service of SERVICES) {
      const pending = await shop.redis(service).xlen(keys.logStream);
      if (pending > 0) found.push(`${pending} ${service} stream entries not yet appended and trimmed`);
    }
    return found;
  };
  if (await eventually(async () => (await busy()).length === 0, timeoutMs, 50)) return;
  throw new Error(`the stack did not settle within ${timeoutMs} ms: ${(await busy()).join(", ")}`);
}

/** Where two Redis states differ, one line per key (hash fields and set members named), `ignored` keys left out. */
export function stateDifferences(
  expected: RedisState,
  actual: RedisState,
  ignored: ReadonlySet<string> = new Set(),
): string[] {
  const lines: string[] = [];
  const allKeys = new Set([...Object.keys(expected), ...Object.keys(actual)]);
  for (const key of [...allKeys].sort()) {
    if (ignored.has(key)) continue;
    const e = expected[key];
    const a = actual[key];
    if (!e) lines.push(`${key}: only in the second (${JSON.stringify(a!.value)})`);
    else if (!a) lines.push(`${key}: missing from the second (${JSON.stringify(e.value)})`);
    else if (e.type !== a.type) lines.push(`${key}: ${e.type} in the first, ${a.type} in the second`);
    else if (e.type === "hash") {
      const eh = e.value as Record<string, string>;
      const ah = a.value as Record<string, string>;
      for (const field of new Set([...Object.keys(eh), ...Object.keys(ah)])) {
        if (eh[field] !== ah[field])
          lines.push(`${key} field ${field}: ${JSON.stringify(eh[field])} ≠ ${JSON.stringify(ah[field])}`);
      }
    } else if (e.type === "set") {
      const es = new Set(e.value as string[]);
      const as = new Set(a.value as string[]);
      for (const m of es) if (!as.has(m)) lines.push(`${key}: member ${m} missing from the second`);
      for (const m of as) if (!es.has(m)) lines.push(`${key}: member ${m} only in the second`);
    } else if (JSON.stringify(e.value) !== JSON.stringify(a.value)) {
      lines.push(`${key}: ${JSON.stringify(e.value)} ≠ ${JSON.stringify(a.value)}`);
    }
  }
  if (lines.length <= LISTED_DIFFERENCES) return lines;
  return [...lines.slice(0, LISTED_DIFFERENCES), `… and ${lines.length - LISTED_DIFFERENCES} more`];
}
