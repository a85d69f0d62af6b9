/**
 * The participant's side of an idempotent saga step (stock's take/restore, payment's charge/refund),
 * as pure decisions over the step's record `op:<opId>`.
 *
 *   (none) --forward ok--> applied --compensate--> compensated
 *   (none) --forward refused--> refused          (compensate: nothing to undo)
 *   (none) --compensate--> cancelled             (fences: a forward that arrives later is refused)
 *
 * A repeated call changes nothing and gets the first outcome; a forward call after its compensation
 * is refused with `operation_cancelled`.
 */
import { AppError, refused } from "./errors";
import { VERSION_FIELD, versionOf, type Hash, type Writes } from "./log";
import type { Decision, Store } from "./store";

export type StepState = "applied" | "refused" | "compensated" | "cancelled";

/** `repeatOf`: the sequence number of the change that decided this outcome first (a repeated call). */
export type StepAnswer =
  | { ok: true; outcome: StepState; repeatOf?: number }
  | { ok: false; error: AppError; repeatOf?: number };

export function forwardStep(
  opKey: string,
  record: Hash | null,
  payload: Hash,
  apply: () => Writes | AppError,
): Decision<StepAnswer> {
  if (record) {
    const repeatOf = versionOf(record);
    switch (record.state as StepState) {
      case "applied":
        return { result: { ok: true, outcome: "applied", repeatOf } };
      case "refused":
        return { result: { ok: false, error: new AppError(Number(record.status) as 404 | 409, record.reason as AppError["code"], record.message ?? ""), repeatOf } };
      default:
        return { result: { ok: false, error: refused("operation_cancelled", `operation was already ${record.state}`), repeatOf } };
    }
  }
  const outcome = apply();
  if (outcome instanceof AppError) {
    const refusal = { ...payload, state: "refused", status: String(outcome.status), reason: outcome.code, message: outcome.message };
    return { result: { ok: false, error: outcome }, writes: { [opKey]: refusal } };
  }
  return { result: { ok: true, outcome: "applied" }, writes: { ...outcome, [opKey]: { ...payload, state: "applied" } } };
}

export function compensateStep(
  opKey: string,
  record: Hash | null,
  payload: Hash,
  undo: (applied: Hash) => Writes,
): Decision<StepAnswer> {
  if (!record) return { result: { ok: true, outcome: "cancelled" }, writes: { [opKey]: { ...payload, state: "cancelled" } } };
  const repeatOf = versionOf(record);
  const state = record.state as StepState;
  if (state !== "applied") return { result: { ok: true, outcome: state, repeatOf } };
  const { [VERSION_FIELD]: _version, ...fields } = record;
  return { result: { ok: true, outcome: "compensated" }, writes: { ...undo(fields), [opKey]: { ...fields, state: "compensated" } } };
}

/** A repeated call is answered only once the line of its first outcome is durable (see Store.untilCommittedDurable). */
export async function settled(store: Store, answer: StepAnswer): Promise<StepAnswer> {
  if (answer.repeatOf !== undefined) await store.untilCommittedDurable();
  return answer;
}
