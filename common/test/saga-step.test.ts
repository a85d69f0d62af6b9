/**
 * The participant's side of a saga step as a state machine, driven through the pure decisions with an
 * in-memory stand-in for what the store does with them: write each key with its sequence number.
 */
import { beforeEach, describe, expect, test } from "bun:test";
import { AppError, refused } from "@checkout/common/errors";
import { VERSION_FIELD, type Hash, type Writes } from "@checkout/common/log";
import { compensateStep, forwardStep, type StepAnswer } from "@checkout/common/saga-step";
import type { Decision } from "@checkout/common/store";

const OP = "op:order-1:1";
const COUNTER = "counter";
const payload = { amount: "3" };

let db: Map<string, Hash>;
let seq: number;

function commit(decision: Decision<StepAnswer>): StepAnswer {
  seq++;
  for (const [key, hash] of Object.entries(decision.writes ?? {})) db.set(key, { ...hash, [VERSION_FIELD]: String(seq) });
  return decision.result;
}

const counter = () => Number(db.get(COUNTER)?.n ?? 0);
const record = () => db.get(OP) ?? null;
const apply = (): Writes | AppError => ({ [COUNTER]: { n: String(counter() + 3) } });
const refuse = (): Writes | AppError => refused("insufficient_stock", "not enough");
const undo = (): Writes => ({ [COUNTER]: { n: String(counter() - 3) } });

const forward = (how = apply) => commit(forwardStep(OP, record(), payload, how));
const compensate = () => commit(compensateStep(OP, record(), payload, undo));

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
    const decision = forwardStep(OP, record(), payload, apply);
    expect(decision.writes).toBeUndefined();
    expect(decision.result).toEqual({ ok: true, outcome: "applied", repeatOf: 1 });
    expect(db).toEqual(writesBefore);
  });

  test("a refusal is recorded and changes nothing else", () => {
    const answer = forward(refuse);
    expect(answer.ok).toBe(false);
    if (!answer.ok) expect([answer.error.status, answer.error.code]).toEqual([409, "insufficient_stock"]);
    expect(counter()).toBe(0);
    expect(record()).toMatchObject({ amount: "3", state: "refused", status: "409", reason: "insufficient_stock", message: "not enough" });
  });

  test("a repeated call after a refusal gets the same refusal, even if the step could now apply", () => {
    forward(refuse);
    const decision = forwardStep(OP, record(), payload, apply);
    expect(decision.writes).toBeUndefined();
    expect(decision.result.ok).toBe(false);
    if (!decision.result.ok) {
      expect(decision.result.error).toBeInstanceOf(AppError);
      expect([decision.result.error.status, decision.result.error.code, decision.result.error.message]).toEqual([409, "insufficient_stock", "not enough"]);
      expect(decision.result.repeatOf).toBe(1);
    }
  });

  test("a recorded 404 refusal is repeated as a 404", () => {
    commit(forwardStep(OP, null, payload, () => new AppError(404, "unknown_user", "user u does not exist")));
    const again = forwardStep(OP, record(), payload, apply).result;
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
    const decision = compensateStep(OP, record(), payload, undo);
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
    const decision = forwardStep(OP, record(), payload, apply);
    expect(decision.writes).toBeUndefined();
    expect(decision.result.ok).toBe(false);
    if (!decision.result.ok) expect(decision.result.error.code).toBe("operation_cancelled");
    expect(counter()).toBe(0);
  });

  test("compensating a refused step changes nothing and answers refused", () => {
    forward(refuse);
    const decision = compensateStep(OP, record(), payload, undo);
    expect(decision.writes).toBeUndefined();
    expect(decision.result).toEqual({ ok: true, outcome: "refused", repeatOf: 1 });
    expect(counter()).toBe(0);
  });

  test("the undo is handed the applied record without its version field", () => {
    forward();
    let handed: Hash | undefined;
    compensateStep(OP, record(), payload, (applied) => {
      handed = applied;
      return {};
    });
    expect(handed).toEqual({ amount: "3", state: "applied" });
  });
});
