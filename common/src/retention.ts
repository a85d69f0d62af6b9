/**
 * Bounded state: a saga step's record (`op:<opId>` at stock and payment) expires, and a step still
 * applies at most once after it has.
 *
 * An operation id carries its attempt's start: `<order>:<attempt>.<nonce>@<start, ms since the epoch>`.
 *
 *  - Every write of a record stamps it `expires_at` = now + retention: an absolute time in the record,
 *    so in its log line, and in Redis (PEXPIREAT, in the same MULTI). Replay and compaction leave out
 *    a record whose time has passed, whoever runs them.
 *  - A record found in Redis decides, as before: it is the first outcome. A delivery that finds it
 *    `applied` writes it again with a new expiry: its saga is still going (a driver sends the steps
 *    of a saga it took over again, or a compensation waits for room), and keeps its record.
 *  - A delivery that finds no record is refused, 409 `operation_expired`, nothing read further or
 *    written, once its attempt began more than `retention - 2 × maxClockSkewMs` ago, or when its start
 *    lies further in the future than the clocks can differ: it is in doubt.
 *
 * Why a step never applies twice, nor after its compensation. A record written at `w` (the
 * participant's clock) is kept until `w + retention` by that clock, and Redis, whose clock differs by
 * less than the skew, keeps it at least until `w + retention - skew`. It was written after its
 * attempt began at `s` (the order service's clock): `w > s - skew`. So it exists at least until
 * `s + retention - 2 × skew`: inside that window, no record means none was ever written (a forward step
 * applies for the first time, a compensation fences its step); past it, no record is ambiguous, and
 * the participant refuses. A record that expires between a batch's WATCH and its EXEC makes the EXEC
 * fail (Redis 6.0.9 and later), and the batch decides again, with its new `now`.
 *
 * Why a saga's own messages meet their records: timing.ts, minStepRecordRetentionMs. A saga whose
 * participant stays unreachable past the window cannot finish: its compensation is refused rather
 * than guessed, the saga stays `compensating`, and says so in its log (README, Known limits).
 *
 * An operation id without a start (sent before retention existed) keeps its record for good, as then.
 */
import type { ServiceConfig } from "./config";
import { TIMING } from "./timing";
import { refused, type AppError } from "./errors";
import type { Hash } from "./log";

/** The field of a record that holds when it expires, in ms since the epoch (a string, as every field). */
export const EXPIRES_FIELD = "expires_at";

export type StepRetention = { retentionMs: number; maxClockSkewMs: number };

export function stepRetention(config: Pick<ServiceConfig, "stepRecordRetentionMs">): StepRetention {
  return { retentionMs: config.stepRecordRetentionMs, maxClockSkewMs: TIMING.maxClockSkewMs };
}

/** What a step's decision needs to keep its record: its operation id, the time, the retention. */
export type StepClock = { opId: string; now: number; retention: StepRetention };

const START_SEPARATOR = "@";

/** The operation id of a saga attempt that began at `startedAt`. */
export function operationId(orderId: string, attempt: number, nonce: string, startedAt: number): string {
  return `${orderId}:${attempt}.${nonce}${START_SEPARATOR}${startedAt}`;
}

/** When the attempt of `opId` began (ms since the epoch), or null for an id that does not say. */
export function attemptStart(opId: string): number | null {
  const at = opId.lastIndexOf(START_SEPARATOR);
  if (at < 0) return null;
  const start = Number(opId.slice(at + 1));
  return Number.isSafeInteger(start) ? start : null;
}

/** When a record expires, or undefined for one kept for good. */
export function expiresAt(hash: Hash | null | undefined): number | undefined {
  const at = Number(hash?.[EXPIRES_FIELD]);
  return at > 0 ? at : undefined;
}

export function isExpired(hash: Hash, now: number): boolean {
  const at = expiresAt(hash);
  return at !== undefined && at <= now;
}

/** The record's fields as written now: with a fresh expiry when its operation id carries a start. */
export function stamped(hash: Hash, clock: StepClock): Hash {
  if (attemptStart(clock.opId) === null) return hash;
  return { ...hash, [EXPIRES_FIELD]: String(clock.now + clock.retention.retentionMs) };
}

/** A record found `applied`, written again to keep it another retention; null where it is kept for good. */
export function renewed(fields: Hash, clock: StepClock): Hash | null {
  return attemptStart(clock.opId) === null ? null : stamped(fields, clock);
}

/**
 * The refusal of a step or compensation that finds no record, when no record may mean one that has
 * expired (see above); null when no record means that none was ever written.
 */
export function unrecordedRefusal(clock: StepClock): AppError | null {
  const start = attemptStart(clock.opId);
  if (start === null) return null;
  const { retentionMs, maxClockSkewMs } = clock.retention;
  if (start > clock.now + maxClockSkewMs) {
    return refused(
      "operation_expired",
      `operation ${clock.opId} starts in the future by more than the clocks may differ; refused while in doubt`,
    );
  }
  if (clock.now - start > retentionMs - 2 * maxClockSkewMs) {
    return refused(
      "operation_expired",
      `operation ${clock.opId} began longer ago than its record is kept; refused, as its first outcome is no longer known`,
    );
  }
  return null;
}
