/** Who drives an order's saga, as pure rules: starting or resuming a checkout, an orphaned saga, its owner. */
import { describe, expect, test } from "bun:test";
import { expectAppError } from "../../common/test/support/errors";
import { newOrder, ownsSaga, startCheckout } from "../src/order-rules";
import { isOrphaned, type SagaRecord } from "../src/saga-record";
import { LEASE, ME, NONCE, NOW, OP, OTHER, running, withSaga } from "./support/order-fixtures";

describe("startCheckout", () => {
  test("of an unknown order is unknown_order and writes nothing", () => {
    const decision = startCheckout(null, "o", ME, NOW, LEASE, NONCE);
    expectAppError(decision.result, 404, "unknown_order");
    expect(decision.order).toBeUndefined();
  });

  test("of a paid order answers paid and writes nothing", () => {
    const decision = startCheckout(
      { ...newOrder("u1"), paid: true, saga: { ...newOrder("u1").saga, status: "done", attempt: 1 } },
      "o",
      ME,
      NOW,
      LEASE,
      NONCE,
    );
    expect(decision.result).toEqual({ kind: "paid" });
    expect(decision.order).toBeUndefined();
  });

  test("of a new order starts attempt 1 at step 0, running, leased to me, its operation id saying when it began", () => {
    const decision = startCheckout(newOrder("u1"), "o", ME, NOW, LEASE, NONCE);
    const saga: SagaRecord = {
      status: "running",
      attempt: 1,
      opId: `${OP}@${NOW}`,
      step: 0,
      error: null,
      owner: ME,
      leaseUntil: NOW + LEASE,
    };
    expect(decision.result).toEqual({ kind: "drive", order: { ...newOrder("u1"), saga }, takeover: false });
    expect(decision.order?.saga).toEqual(saga);
  });

  test("gives every attempt an operation id of its own, even one with the same number", () => {
    const first = startCheckout(newOrder("u1"), "o", ME, NOW, LEASE, "aaaa").order!.saga.opId;
    const again = startCheckout(newOrder("u1"), "o", ME, NOW, LEASE, "bbbb").order!.saga.opId;
    expect(first).not.toBe(again);
  });

  test("resuming an attempt that has ended (a sweep that looked just before) starts no new one and writes nothing", () => {
    const failed = withSaga({
      status: "failed",
      attempt: 1,
      opId: OP,
      step: -1,
      error: { status: 409, code: "insufficient_stock", message: "no" },
    });
    expect(startCheckout(failed, "o", ME, NOW, LEASE, NONCE, undefined, OP)).toEqual({ result: { kind: "ended" } });
    // Nor one that a newer attempt replaced.
    const newer = withSaga({
      status: "running",
      attempt: 2,
      opId: `o:2.${NONCE}`,
      step: 0,
      owner: OTHER,
      leaseUntil: NOW - 1,
    });
    expect(startCheckout(newer, "o", ME, NOW, LEASE, NONCE, undefined, OP)).toEqual({ result: { kind: "ended" } });
  });

  test("resuming an orphaned attempt takes it over where it stands", () => {
    const decision = startCheckout(running(OTHER, NOW - 1), "o", ME, NOW, LEASE, NONCE, undefined, OP);
    expect(decision.result).toMatchObject({
      kind: "drive",
      order: { saga: { opId: OP, owner: ME, leaseUntil: NOW + LEASE } },
    });
  });

  test("of a failed order starts the next attempt and forgets the old error", () => {
    const failed = withSaga({
      status: "failed",
      attempt: 3,
      step: -1,
      error: { status: 409, code: "insufficient_stock", message: "no" },
    });
    const decision = startCheckout(failed, "o", ME, NOW, LEASE, NONCE);
    expect(decision.order?.saga).toEqual({
      status: "running",
      attempt: 4,
      opId: `o:4.${NONCE}@${NOW}`,
      step: 0,
      error: null,
      owner: ME,
      leaseUntil: NOW + LEASE,
    });
  });

  test("of an order whose saga another process holds a live lease on says to wait for that attempt", () => {
    const decision = startCheckout(running(OTHER, NOW + 1), "o", ME, NOW, LEASE, NONCE);
    expect(decision.result).toEqual({ kind: "wait", opId: OP, decided: false, driver: OTHER });
    expect(decision.order).toBeUndefined();
  });

  test("of an order whose saga another process holds a live lease on, that process being gone, takes the saga over", () => {
    const decision = startCheckout(running(OTHER, NOW + LEASE), "o", ME, NOW, LEASE, NONCE, new Set([OTHER]));
    expect(decision.result).toMatchObject({
      kind: "drive",
      order: { saga: { opId: OP, owner: ME, leaseUntil: NOW + LEASE } },
    });
  });

  test("of an order whose saga another process is compensating says to wait for that attempt's end, its failure being decided", () => {
    const compensating = withSaga({
      status: "compensating",
      attempt: 1,
      opId: OP,
      step: 0,
      owner: OTHER,
      leaseUntil: NOW + 1,
      error: { status: 409, code: "insufficient_credit", message: "no" },
    });
    expect(startCheckout(compensating, "o", ME, NOW, LEASE, NONCE).result).toEqual({
      kind: "wait",
      opId: OP,
      decided: true,
      driver: OTHER,
    });
  });

  test("of an order whose saga lease has expired takes the saga over where it stands, and says it is a takeover", () => {
    const stuck = withSaga({
      status: "compensating",
      attempt: 2,
      step: 0,
      owner: OTHER,
      leaseUntil: NOW - 1,
      error: { status: 409, code: "insufficient_credit", message: "no" },
    });
    const decision = startCheckout(stuck, "o", ME, NOW, LEASE, NONCE);
    const claimed = { ...stuck, saga: { ...stuck.saga, owner: ME, leaseUntil: NOW + LEASE } };
    expect(decision.result).toEqual({ kind: "drive", order: claimed, takeover: true });
    expect(decision.order).toEqual(claimed);
  });

  test("of an order whose saga lease ends exactly now takes the saga over", () => {
    expect(startCheckout(running(OTHER, NOW), "o", ME, NOW, LEASE, NONCE).result).toMatchObject({ kind: "drive" });
  });

  test("of an order whose saga I hold drives it on with a renewed lease", () => {
    const mine = running(ME, NOW + 1);
    const decision = startCheckout(mine, "o", ME, NOW, LEASE, NONCE);
    expect(decision.result).toEqual({
      kind: "drive",
      order: { ...mine, saga: { ...mine.saga, leaseUntil: NOW + LEASE } },
      takeover: false,
    });
  });
});

describe("isOrphaned", () => {
  test("holds for another process's saga once its lease has run out, not before", () => {
    expect(isOrphaned(running(OTHER, NOW).saga, ME, NOW, false)).toBe(true);
    expect(isOrphaned(running(OTHER, NOW + 1).saga, ME, NOW, false)).toBe(false);
  });

  test("holds for another process's saga under a live lease once that process is gone", () => {
    expect(isOrphaned(running(OTHER, NOW + LEASE).saga, ME, NOW, true)).toBe(true);
  });

  test("holds for a saga recorded as mine, whatever its lease: a previous run of this replica left it", () => {
    expect(isOrphaned(running(ME, NOW + LEASE).saga, ME, NOW, false)).toBe(true);
  });

  test("never holds for a finished saga or an order never checked out", () => {
    for (const status of ["done", "failed"] as const)
      expect(isOrphaned(withSaga({ status, owner: "", leaseUntil: 0 }).saga, ME, NOW, true)).toBe(false);
    expect(isOrphaned(newOrder("u1").saga, ME, NOW, true)).toBe(false);
  });
});

describe("ownsSaga", () => {
  test("holds for my running attempt", () => {
    expect(ownsSaga(running(ME, NOW), OP, ME)).toBe(true);
  });

  test("holds for my compensating attempt", () => {
    expect(ownsSaga(withSaga({ status: "compensating", attempt: 1, opId: OP, owner: ME }), OP, ME)).toBe(true);
  });

  test("fails for another attempt", () => {
    expect(ownsSaga(running(ME, NOW), `o:2.${NONCE}`, ME)).toBe(false);
  });

  test("fails once another process took the saga over", () => {
    expect(ownsSaga(running(OTHER, NOW), OP, ME)).toBe(false);
  });

  test("fails once the saga is finished", () => {
    expect(ownsSaga(withSaga({ status: "done", attempt: 1, opId: OP, owner: ME }), OP, ME)).toBe(false);
    expect(ownsSaga(withSaga({ status: "failed", attempt: 1, opId: OP, owner: ME }), OP, ME)).toBe(false);
  });

  test("fails for no order", () => {
    expect(ownsSaga(null, OP, ME)).toBe(false);
  });
});
