/** A saga record's changes as pure rules, and the unfinished-sagas index recovery rebuilds from it. */
import { describe, expect, test } from "bun:test";
import { AppError } from "@checkout/common/errors";
import { newOrder, orderCodec } from "../src/order-rules";
import { DERIVED_INDEXES, keys } from "@checkout/common/keyspace";
import { isUnfinished, NO_SAGA, sagaChanges, type SagaStatus } from "../src/saga-record";
import { LEASE, ME, NOW, OP, running, withSaga } from "./support/order-fixtures";

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
