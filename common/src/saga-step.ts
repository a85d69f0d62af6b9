/**
 * The participant's side of an idempotent saga step (stock's take/restore, payment's charge/refund),
 * as pure decisions over the step's record `op:<opId>`.
 *
 *   (none) --forward ok--> applied --compensate--> compensated
 *   (none) --forward refused--> refused          (compensate: nothing to undo)
 *   (none) --compensate--> cancelled             (fences: a forward that arrives later is refused)
 *
 * A repeated call changes nothing and gets the first outcome; a forward call after its compensation
 * is refused with `operation_cancelled`. Records expire (retention.ts): a call that finds none once
 * it may have expired is refused with `operation_expired`, and a call that finds one still `applied`
 * keeps it longer.
 *
 * `participantSteps` runs them on a participant's store: a participant names each step's entity keys,
 * its payload and its rule (stock.ts, payment.ts), and nothing else.
 */
import { AppError, refused } from "./errors";
import { keys } from "./keyspace";
import { VERSION_FIELD, versionOf, type Hash, type Writes } from "./log";
import { renewed, stamped, unrecordedRefusal, type StepClock, type StepRetention } from "./retention";
import type { Decision, Snapshot, Store } from "./store";

export type StepState = "applied" | "refused" | "compensated" | "cancelled";

/** `repeatOf`: the sequence number of the change that decided this outcome first (a repeated call). */
export type StepAnswer =
  | { ok: true; outcome: StepState; repeatOf?: number }
  | { ok: false; error: AppError; repeatOf?: number };

/** A record as read, without its version: the fields to write it again. */
function fieldsOf(record: Hash): Hash {
  const { [VERSION_FIELD]: _version, ...fields } = record;
  return fields;
}

/** The writes that keep an `applied` record another retention (none for one kept for good). */
function keep(opKey: string, record: Hash, clock: StepClock): Writes | undefined {
  const fields = renewed(fieldsOf(record), clock);
  return fields ? { [opKey]: fields } : undefined;
}

export function forwardStep(
  opKey: string,
  record: Hash | null,
  payload: Hash,
  clock: StepClock,
  apply: () => Writes | AppError,
): Decision<StepAnswer> {
  if (record) {
    const repeatOf = versionOf(record);
    switch (record.state as StepState) {
      case "applied":
        // Its saga is still going: the record is kept for another retention.
        return { result: { ok: true, outcome: "applied", repeatOf }, writes: keep(opKey, record, clock) };
      case "refused":
        return {
          result: {
            ok: false,
            error: new AppError(
              Number(record.status) as 404 | 409,
              record.reason as AppError["code"],
              record.message ?? "",
            ),
            repeatOf,
          },
        };
      default:
        return {
          result: {
            ok: false,
            error: refused("operation_cancelled", `operation was already ${record.state}`),
            repeatOf,
          },
        };
    }
  }
  const expired = unrecordedRefusal(clock);
  if (expired) return { result: { ok: false, error: expired } };
  const outcome = apply();
  if (outcome instanceof AppError) {
    const refusal = {
      ...payload,
      state: "refused",
      status: String(outcome.status),
      reason: outcome.code,
      message: outcome.message,
    };
    return { result: { ok: false, error: outcome }, writes: { [opKey]: stamped(refusal, clock) } };
  }
  return {
    result: { ok: true, outcome: "applied" },
    writes: { ...outcome, [opKey]: stamped({ ...payload, state: "applied" }, clock) },
  };
}

/**
 * `undo` returns the writes that undo the step, or the refusal of an undo that cannot be applied yet
 * (the saga sends it again): the record, still `applied`, is then kept for another retention.
 */
export function compensateStep(
  opKey: string,
  record: Hash | null,
  payload: Hash,
  clock: StepClock,
  undo: (applied: Hash) => Writes | AppError,
): Decision<StepAnswer> {
  if (!record) {
    const expired = unrecordedRefusal(clock);
    if (expired) return { result: { ok: false, error: expired } };
    return {
      result: { ok: true, outcome: "cancelled" },
      writes: { [opKey]: stamped({ ...payload, state: "cancelled" }, clock) },
    };
  }
  const repeatOf = versionOf(record);
  const state = record.state as StepState;
  if (state !== "applied") return { result: { ok: true, outcome: state, repeatOf } };
  const fields = fieldsOf(record);
  const undone = undo(fields);
  if (undone instanceof AppError) return { result: { ok: false, error: undone }, writes: keep(opKey, record, clock) };
  return {
    result: { ok: true, outcome: "compensated" },
    writes: { ...undone, [opKey]: stamped({ ...fields, state: "compensated" }, clock) },
  };
}

/** A repeated call is answered only once the line of its first outcome is durable (see Store.untilCommittedDurable). */
export async function settled(store: Store, answer: StepAnswer): Promise<StepAnswer> {
  if (answer.repeatOf !== undefined) await store.untilCommittedDurable();
  return answer;
}

/**
 * A participant's forward step and compensation on its store: each is one transaction over the step's
 * record and `touched` (the keys its rule reads and writes), answered once durable (see settled).
 * `payload` is what the record keeps of the call, so that a compensation can check it names the same.
 */
export function participantSteps(store: Store, retention: StepRetention) {
  const run = async (
    op: string,
    opId: string,
    touched: readonly string[],
    decide: (opKey: string, record: Hash | null, clock: StepClock, snapshot: Snapshot) => Decision<StepAnswer>,
  ): Promise<StepAnswer> => {
    const opKey = keys.operation(opId);
    const answer = await store.transact(op, [opKey, ...touched], (snapshot) =>
      decide(opKey, snapshot.get(opKey) ?? null, { opId, now: Date.now(), retention }, snapshot),
    );
    return settled(store, answer);
  };
  return {
    forward: (
      op: string,
      opId: string,
      touched: readonly string[],
      payload: Hash,
      apply: (snapshot: Snapshot) => Writes | AppError,
    ) =>
      run(op, opId, touched, (opKey, record, clock, snapshot) =>
        forwardStep(opKey, record, payload, clock, () => apply(snapshot)),
      ),
    compensate: (
      op: string,
      opId: string,
      touched: readonly string[],
      payload: Hash,
      undo: (applied: Hash, snapshot: Snapshot) => Writes | AppError,
    ) =>
      run(op, opId, touched, (opKey, record, clock, snapshot) =>
        compensateStep(opKey, record, payload, clock, (applied) => undo(applied, snapshot)),
      ),
  };
}
