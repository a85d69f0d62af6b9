/**
 * Group commit of optimistic transactions, the pure part. A process queues its transactions while
 * one batch is in flight; the next batch WATCHes the union of their keys, reads them once, and runs
 * each decision in arrival order over what the earlier ones wrote, as if they had committed one
 * after another. One MULTI/EXEC then commits them all, or none if any watched key changed.
 *
 * So transactions on the same key inside a process never conflict with each other (they are
 * ordered, not raced), and a batch of N costs one log flush instead of N, and one Redis round trip
 * under load (the next batch's WATCH and reads ride with this one's MULTI/EXEC, group-commit.ts),
 * two when it is alone, instead of two per transaction.
 */
import { formatLine, VERSION_FIELD, type Hash, type JsonWrite, type Writes } from "./log";

/** What a transaction read: each watched key's fields, or null where the key does not exist. */
export type Snapshot = ReadonlyMap<string, Hash | null>;

/** What a pure decision returns: the answer, and the absolute new state of each key to write (if any). */
export type Decision<R> = { result: R; writes?: Writes };

export type BatchEntry = {
  op: string;
  watched: readonly string[];
  decide: (snapshot: Snapshot) => Decision<unknown>;
};

export type EntryOutcome =
  | { ok: true; result: unknown; seq: number; line: string | null }
  | { ok: false; error: unknown };

/** A key's new state, its JSON (as in the log line) and the number of the change that wrote it. */
export type BatchWrite = JsonWrite & { hash: Hash; seq: number };

export type BatchPlan = {
  outcomes: EntryOutcome[];
  /** Every write in commit order, each carrying its transaction's sequence number as version. */
  writes: BatchWrite[];
};

/** The union of the entries' keys, each once, in first-seen order. */
export function watchedKeys(entries: readonly BatchEntry[]): string[] {
  return [...new Set(entries.flatMap((entry) => entry.watched))];
}

/**
 * Runs the decisions in order; entry i takes sequence number firstSeq + i. A decision sees exactly
 * its watched keys, as the reads found them plus the writes of earlier entries of the batch.
 */
export function planBatch(
  entries: readonly BatchEntry[],
  read: ReadonlyMap<string, Hash | null>,
  firstSeq: number,
  at: string,
): BatchPlan {
  const current = new Map(read);
  const outcomes: EntryOutcome[] = [];
  const writes: BatchPlan["writes"] = [];
  entries.forEach((entry, i) => {
    const seq = firstSeq + i;
    const snapshot = new Map(entry.watched.map((key) => [key, current.get(key) ?? null] as const));
    let decision: Decision<unknown>;
    try {
      decision = entry.decide(snapshot);
    } catch (error) {
      outcomes.push({ ok: false, error });
      return;
    }
    const changed: Writes | undefined =
      decision.writes && Object.keys(decision.writes).length > 0 ? decision.writes : undefined;
    if (!changed) {
      outcomes.push({ ok: true, result: decision.result, seq, line: null });
      return;
    }
    const written = Object.entries(changed).map(([key, hash]) => ({ key, hash, seq, json: JSON.stringify(hash) }));
    for (const write of written) {
      current.set(write.key, { ...write.hash, [VERSION_FIELD]: String(seq) });
      writes.push(write);
    }
    outcomes.push({ ok: true, result: decision.result, seq, line: formatLine(seq, at, entry.op, written) });
  });
  return { outcomes, writes };
}
