import { describe, expect, test } from "bun:test";
import { AppError } from "@checkout/common/errors";
import { expectAppError } from "../../common/test/support/errors";
import { MAX_INTEGER } from "@checkout/common/limits";
import { MAX_ITEMS_PER_STEP } from "@checkout/common/internal";
import { newOrder, orderCodec, ownsSaga, startCheckout, withItem, type Order } from "../src/order-rules";
import { DERIVED_INDEXES, keys } from "@checkout/common/keyspace";
import { isOrphaned, isUnfinished, NO_SAGA, sagaChanges, type SagaRecord, type SagaStatus } from "../src/saga-record";

const ME = "order-1";
const OTHER = "order-2";
const NOW = 1_000_000;
const LEASE = 3_000;
const NONCE = "n0nce";
const OP = `o:1.${NONCE}`;

const withSaga = (saga: Partial<SagaRecord>, order = newOrder("u1", [["a", 1]], 5)): Order => ({
  ...order,
  saga: { ...order.saga, ...saga },
});

const running = (owner: string, leaseUntil: number) =>
  withSaga({ status: "running", attempt: 1, opId: OP, step: 0, owner, leaseUntil });

describe("withItem", () => {
  test("appends the item and adds quantity × price to the total", () => {
    const order = withItem(newOrder("u1", [["a", 1]], 5), "o", "b", 3, 7);
    expect(order).toEqual({
      ...newOrder("u1"),
      items: [
        ["a", 1],
        ["b", 3],
      ],
      totalCost: 26,
    });
  });

  test("keeps a repeated item as a separate line", () => {
    const order = withItem(newOrder("u1", [["a", 1]], 5), "o", "a", 2, 5) as Order;
    expect(order.items).toEqual([
      ["a", 1],
      ["a", 2],
    ]);
    expect(order.totalCost).toBe(15);
  });

  test("beyond the lines one stock step carries is refused as order_too_large", () => {
    const full = newOrder(
      "u1",
      Array.from({ length: MAX_ITEMS_PER_STEP }, (_, i) => [`item-${i}`, 1] as [string, number]),
      MAX_ITEMS_PER_STEP,
    );
    expectAppError(withItem(full, "o", "a", 1, 1), 409, "order_too_large");
    expect((withItem({ ...full, items: full.items.slice(1) }, "o", "a", 1, 1) as Order).items).toHaveLength(
      MAX_ITEMS_PER_STEP,
    );
  });

  test("to an unknown order is unknown_order", () => {
    expectAppError(withItem(null, "o", "a", 1, 1), 404, "unknown_order");
  });

  test("to a paid order is refused as order_already_paid", () => {
    expectAppError(withItem({ ...newOrder("u1"), paid: true }, "o", "a", 1, 1), 409, "order_already_paid");
  });

  test("to an order whose checkout is running is refused as checkout_in_progress", () => {
    expectAppError(withItem(running(OTHER, NOW + 1), "o", "a", 1, 1), 409, "checkout_in_progress");
  });

  test("to an order whose checkout is compensating is refused as checkout_in_progress", () => {
    expectAppError(
      withItem(withSaga({ status: "compensating", attempt: 1 }), "o", "a", 1, 1),
      409,
      "checkout_in_progress",
    );
  });

  test("to an order whose checkout failed is allowed", () => {
    const order = withItem(withSaga({ status: "failed", attempt: 1 }), "o", "b", 1, 2) as Order;
    expect(order.totalCost).toBe(7);
  });

  test("that would take the total beyond 2^53-1 is invalid input", () => {
    expectAppError(withItem(newOrder("u1", [], MAX_INTEGER - 1), "o", "a", 1, 2), 400, "invalid_input");
    expectAppError(withItem(newOrder("u1"), "o", "a", MAX_INTEGER, 2), 400, "invalid_input");
  });

  test("that takes the total to exactly 2^53-1 is allowed", () => {
    expect((withItem(newOrder("u1", [], MAX_INTEGER - 2), "o", "a", 1, 2) as Order).totalCost).toBe(MAX_INTEGER);
  });
});

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

describe("sagaChanges", () => {
  const order = running(ME, NOW);
  const apply = (change: ReturnType<typeof sagaChanges.paid>) => ({ ...order, ...change(order.saga, order) });

  test("renewLease only renews the lease", () => {
    expect(apply(sagaChanges.renewLease(NOW + 10, LEASE))).toEqual({
      ...order,
      saga: { ...order.saga, leaseUntil: NOW + 10 + LEASE },
    });
  });

  test("paid marks the order paid and the saga done, releasing the lease", () => {
    const paid = apply(sagaChanges.paid());
    expect(paid.paid).toBe(true);
    expect(paid.saga).toEqual({ ...order.saga, status: "done", owner: "", leaseUntil: 0 });
  });

  test("compensate records the failure and the last step to undo", () => {
    const error = new AppError(409, "insufficient_credit", "user u1 has credit 0, 5 requested");
    const next = apply(sagaChanges.compensate(0, error, NOW + 10, LEASE));
    expect(next.paid).toBe(false);
    expect(next.saga).toEqual({
      ...order.saga,
      status: "compensating",
      step: 0,
      error: { status: 409, code: "insufficient_credit", message: "user u1 has credit 0, 5 requested" },
      leaseUntil: NOW + 10 + LEASE,
    });
  });

  test("paid and compensate apply only to a running saga: a late 'charged' never marks a compensating order paid", () => {
    const compensating = withSaga({
      status: "compensating",
      attempt: 1,
      opId: OP,
      step: 0,
      owner: ME,
      leaseUntil: NOW,
    });
    expect(sagaChanges.paid()(compensating.saga, compensating)).toBeNull();
    expect(
      sagaChanges.compensate(
        0,
        new AppError(409, "insufficient_credit", "no"),
        NOW,
        LEASE,
      )(compensating.saga, compensating),
    ).toBeNull();
  });

  test("failed finishes the saga, keeps its error, and releases the lease", () => {
    const error = { status: 409 as const, code: "insufficient_stock" as const, message: "no" };
    const compensating = withSaga({ status: "compensating", attempt: 1, step: -1, owner: ME, leaseUntil: NOW, error });
    const next = { ...compensating, ...sagaChanges.failed()(compensating.saga, compensating) };
    expect(next.saga).toEqual({ ...compensating.saga, status: "failed", owner: "", leaseUntil: 0 });
    expect(next.paid).toBe(false);
  });
});

describe("orderCodec", () => {
  test("decodes what it encodes", () => {
    const order = withSaga({
      status: "compensating",
      attempt: 2,
      step: 1,
      owner: ME,
      leaseUntil: NOW,
      error: { status: 409, code: "insufficient_credit", message: "no" },
    });
    expect(orderCodec.decode(orderCodec.encode(order))).toEqual(order);
  });
});

describe("the unfinished-sagas index recovery rebuilds (common/src/keyspace.ts)", () => {
  test("holds an order exactly when its saga is unfinished", () => {
    const [index] = DERIVED_INDEXES.order.filter((i) => i.set === keys.activeSagas);
    const statuses: SagaStatus[] = ["none", "running", "compensating", "failed", "done"];
    for (const status of statuses) {
      const order = { ...newOrder("u1"), saga: { ...NO_SAGA, status } };
      expect(index!.contains(orderCodec.encode(order))).toBe(isUnfinished(order.saga));
    }
  });
});
