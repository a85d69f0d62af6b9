/**
 * The participant's side of a saga step as a state machine, driven through the pure decisions with an
 * in-memory stand-in for what the store does with them: write each key with its sequence number.
 */
import { beforeEach, describe, expect, test } from "bun:test";
import { AppError, refused } from "@checkout/common/errors";
import { VERSION_FIELD, type Hash, type Writes } from "@checkout/common/log";
import { EXPIRES_FIELD, operationId, type StepClock } from "@checkout/common/retention";
import { compensateStep, forwardStep, type StepAnswer } from "@checkout/common/saga-step";
import type { Decision } from "@checkout/common/store";

const OP = "op:order-1:1";
const COUNTER = "counter";
const payload = { amount: "3" };

let db: Map<string, Hash>;
let seq: number;

function commit(decision: Decision<StepAnswer>): StepAnswer {
  seq++;
  for (const [key, hash] of Object.entries(decision.writes ?? {}))
    db.set(key, { ...hash, [VERSION_FIELD]: String(seq) });
  return decision.result;
}

const counter = () => Number(db.get(COUNTER)?.n ?? 0);
const record = () => db.get(OP) ?? null;
const apply = (): Writes | AppError => ({ [COUNTER]: { n: String(counter() + 3) } });
const refuse = (): Writes | AppError => refused("insufficient_stock", "not enough");
const undo = (): Writes => ({ [COUNTER]: { n: String(counter() - 3) } });

/** An operation id from before records expired (no start): its record is kept for good. */
const KEPT: StepClock = { opId: "order-1:1", now: 0, retention: { retentionMs: 10_000, maxClockSkewMs: 100 } };

const forward = (how = apply, clock = KEPT) => commit(forwardStep(OP, record(), payload, clock, how));
const compensate = (clock = KEPT, how: () => Writes | AppError = undo) =>
  commit(compensateStep(OP, record(), payload, clock, how));

beforeEach(() => {
  db = new Map();
  seq = 0;
});

describe("forward step", () => {
  test("the first forward call applies the step and records it as applied", () => {
    expect(forward()).toEqual({ ok: true, outcome: "applied" });
    expect(counter()).toBe(3);
    expect(record()).toEqual({ amount: "3", state: "applied", [VERSION_FIELD]: "1" });
  });

  test("a repeated forward call changes nothing and answers the first outcome with repeatOf", () => {
    forward();
    const writesBefore = new Map(db);
    const decision = forwardStep(OP, record(), payload, KEPT, apply);
    expect(decision.writes).toBeUndefined();
    expect(decision.result).toEqual({ ok: true, outcome: "applied", repeatOf: 1 });
    expect(db).toEqual(writesBefore);
  });

  test("a refusal is recorded and changes nothing else", () => {
    const answer = forward(refuse);
    expect(answer.ok).toBe(false);
    if (!answer.ok) expect([answer.error.status, answer.error.code]).toEqual([409, "insufficient_stock"]);
    expect(counter()).toBe(0);
    expect(record()).toMatchObject({
      amount: "3",
      state: "refused",
      status: "409",
      reason: "insufficient_stock",
      message: "not enough",
    });
  });

  test("a repeated call after a refusal gets the same refusal, even if the step could now apply", () => {
    forward(refuse);
    const decision = forwardStep(OP, record(), payload, KEPT, apply);
    expect(decision.writes).toBeUndefined();
    expect(decision.result.ok).toBe(false);
    if (!decision.result.ok) {
      expect(decision.result.error).toBeInstanceOf(AppError);
      expect([decision.result.error.status, decision.result.error.code, decision.result.error.message]).toEqual([
        409,
        "insufficient_stock",
        "not enough",
      ]);
      expect(decision.result.repeatOf).toBe(1);
    }
  });

  test("a recorded 404 refusal is repeated as a 404", () => {
    commit(forwardStep(OP, null, payload, KEPT, () => new AppError(404, "unknown_user", "user u does not exist")));
    const again = forwardStep(OP, record(), payload, KEPT, apply).result;
    expect(again.ok).toBe(false);
    if (!again.ok) expect([again.error.status, again.error.code]).toEqual([404, "unknown_user"]);
  });
});

describe("compensation", () => {
  test("compensating an applied step undoes it and records it as compensated", () => {
    forward();
    expect(compensate()).toEqual({ ok: true, outcome: "compensated" });
    expect(counter()).toBe(0);
    expect(record()).toMatchObject({ amount: "3", state: "compensated" });
  });

  test("compensating twice undoes once", () => {
    forward();
    compensate();
    const decision = compensateStep(OP, record(), payload, KEPT, undo);
    expect(decision.writes).toBeUndefined();
    expect(decision.result).toEqual({ ok: true, outcome: "compensated", repeatOf: 2 });
    expect(counter()).toBe(0);
  });

  test("compensating a step that never arrived records it as cancelled and changes nothing else", () => {
    expect(compensate()).toEqual({ ok: true, outcome: "cancelled" });
    expect(counter()).toBe(0);
    expect(record()).toMatchObject({ amount: "3", state: "cancelled" });
  });

  test("a forward call after its compensation is refused with operation_cancelled", () => {
    forward();
    compensate();
    const answer = forward();
    expect(answer.ok).toBe(false);
    if (!answer.ok) expect([answer.error.status, answer.error.code]).toEqual([409, "operation_cancelled"]);
    expect(counter()).toBe(0);
  });

  test("a forward call that arrives after its cancellation is refused and applies nothing", () => {
    compensate();
    const decision = forwardStep(OP, record(), payload, KEPT, apply);
    expect(decision.writes).toBeUndefined();
    expect(decision.result.ok).toBe(false);
    if (!decision.result.ok) expect(decision.result.error.code).toBe("operation_cancelled");
    expect(counter()).toBe(0);
  });

  test("compensating a refused step changes nothing and answers refused", () => {
    forward(refuse);
    const decision = compensateStep(OP, record(), payload, KEPT, undo);
    expect(decision.writes).toBeUndefined();
    expect(decision.result).toEqual({ ok: true, outcome: "refused", repeatOf: 1 });
    expect(counter()).toBe(0);
  });

  test("the undo is handed the applied record without its version field", () => {
    forward();
    let handed: Hash | undefined;
    compensateStep(OP, record(), payload, KEPT, (applied) => {
      handed = applied;
      return {};
    });
    expect(handed).toEqual({ amount: "3", state: "applied" });
  });
});

describe("retention: an operation id that carries its attempt's start", () => {
  const START = 1_000_000;
  const retention = { retentionMs: 10_000, maxClockSkewMs: 100 };
  /** The last moment a call that finds no record is still sure none was ever written. */
  const WINDOW_END = START + retention.retentionMs - 2 * retention.maxClockSkewMs;
  const at = (now: number): StepClock => ({ opId: operationId("order-1", 1, "n", START), now, retention });
  const expired = (answer: StepAnswer) => (answer.ok ? null : [answer.error.status, answer.error.code]);

  test("every record written expires one retention after its write", () => {
    forward(apply, at(START + 5));
    expect(record()?.[EXPIRES_FIELD]).toBe(String(START + 5 + retention.retentionMs));
    compensate(at(START + 7));
    expect(record()).toMatchObject({
      state: "compensated",
      [EXPIRES_FIELD]: String(START + 7 + retention.retentionMs),
    });
  });

  test("a step, and a compensation, that find no record within the window apply as before", () => {
    expect(forward(apply, at(WINDOW_END))).toEqual({ ok: true, outcome: "applied" });
    db = new Map();
    expect(compensate(at(WINDOW_END))).toEqual({ ok: true, outcome: "cancelled" });
  });

  test("a step, and a compensation, that find no record once it may have expired are refused and write nothing", () => {
    expect(expired(forward(apply, at(WINDOW_END + 1)))).toEqual([409, "operation_expired"]);
    expect(expired(compensate(at(WINDOW_END + 1)))).toEqual([409, "operation_expired"]);
    expect(db.size).toBe(0);
  });

  test("an attempt that starts later than the clocks can differ is refused while in doubt", () => {
    expect(expired(forward(apply, at(START - retention.maxClockSkewMs - 1)))).toEqual([409, "operation_expired"]);
    expect(forward(apply, at(START - retention.maxClockSkewMs))).toEqual({ ok: true, outcome: "applied" });
  });

  test("a record found decides, past the window too", () => {
    forward(apply, at(START));
    compensate(at(START + 1));
    expect(expired(forward(apply, at(WINDOW_END + 5_000)))).toEqual([409, "operation_cancelled"]);
    expect(counter()).toBe(0);
  });

  test("a repeated step keeps its applied record another retention, and applies nothing", () => {
    forward(apply, at(START));
    expect(forward(apply, at(START + 9_000))).toEqual({ ok: true, outcome: "applied", repeatOf: 1 });
    expect(counter()).toBe(3);
    expect(record()).toMatchObject({
      state: "applied",
      [EXPIRES_FIELD]: String(START + 9_000 + retention.retentionMs),
    });
  });

  test("a compensation that cannot apply yet keeps its step's record, and applies once it can", () => {
    forward(apply, at(START));
    const tooFull = () => refused("invalid_input", "would pass the maximum");
    expect(expired(compensate(at(START + 9_000), tooFull))).toEqual([409, "invalid_input"]);
    expect(record()).toMatchObject({
      state: "applied",
      [EXPIRES_FIELD]: String(START + 9_000 + retention.retentionMs),
    });
    expect(compensate(at(START + 18_000))).toEqual({ ok: true, outcome: "compensated" });
    expect(counter()).toBe(0);
  });
});
