/**
 * The checkout saga driven in-process (createCheckout) against real stock and payment services and a
 * real order Redis, with peers that can be scripted: a step whose answer is lost, an answer that
 * arrives late. The saga must stay consistent whatever the network does. Here one driver at a time:
 * concurrent checkouts in one process, and compensations; saga-takeover.test.ts has drivers taking
 * sagas over from each other.
 */
import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { TIMING } from "@checkout/common/timing";
import { AppError } from "@checkout/common/errors";
import { createOrders } from "../src/orders";
import type { PeerAnswer } from "../src/peers";
import { createCheckout } from "../src/saga";
import { post } from "../../common/test/support/http";
import { eventually } from "../../common/test/support/eventually";
import {
  countingPeers,
  creditOf,
  drivesNothing,
  FORWARD_DEADLINE_MS,
  INSTANCE,
  ITEM_UNITS,
  newOrder,
  orderStore,
  payment,
  real,
  sagaFinished,
  sagaServers,
  sagaStatus,
  scripted,
  SETTLE_TIMEOUT_MS,
  stockOf,
} from "./support/saga-servers";

/** Real servers on a shared machine: generous, so that load elsewhere never fails a test by time alone. */
setDefaultTimeout(60_000);

sagaServers();

describe("checkout saga", () => {
  test("two concurrent checkouts of one order in one process drive its saga once", async () => {
    const orders = createOrders(orderStore, INSTANCE, TIMING.sagaLeaseMs);
    const { id } = await newOrder(orders, 1, 100);

    const { peers, sent } = countingPeers();
    const checkout = createCheckout(orders, peers);

    const outcomes = await Promise.all([checkout.checkout(id), checkout.checkout(id)]);
    expect(outcomes).toEqual([{ paid: true }, { paid: true }]);
    expect(sent).toEqual(["take", "charge"]);
  });

  test("an order is never paid for a charge that was refunded, even when two checkouts of it race in one process", async () => {
    const orders = createOrders(orderStore, INSTANCE, TIMING.sagaLeaseMs);
    const { id, item: a, user } = await newOrder(orders, 2, 100);

    // The first charge is held on its way to payment and its answer is lost; the copies the driver
    // sends again are lost too, until its deadline passes and it compensates. The held charge lands
    // once that compensation is decided, and the refund only after it.
    const landed: string[] = [];
    const lateChargeLanded = Promise.withResolvers<void>();
    const landOnceCompensating = async (send: () => Promise<PeerAnswer>) => {
      const compensating = await eventually(async () => (await sagaStatus(id)) === "compensating", SETTLE_TIMEOUT_MS);
      const answer = await send();
      landed.push(`charge ${answer.kind} ${compensating ? "after" : "without"} the decision to compensate`);
      lateChargeLanded.resolve();
    };
    let charges = 0;
    const flakyPayment = scripted(real.payment, async (action, send) => {
      if (action === "charge") {
        if (++charges === 1) void landOnceCompensating(send);
        return { kind: "unknown", reason: "scripted: the answer was lost" };
      }
      if (action === "refund") {
        await lateChargeLanded.promise;
        landed.push("refund");
      }
      return send();
    });
    const checkout = createCheckout(
      orders,
      { stock: real.stock, payment: flakyPayment },
      {
        ...TIMING,
        // createCheckout's `timing` is typed as TIMING's literal values, so another value needs a cast.
        forwardStepDeadlineMs: FORWARD_DEADLINE_MS as typeof TIMING.forwardStepDeadlineMs,
      },
    );

    const outcomes = await Promise.all([checkout.checkout(id), checkout.checkout(id)]);
    expect(await sagaFinished(id)).toBe(true);
    expect(await drivesNothing(checkout)).toBe(true);
    expect(landed).toEqual(["charge ok after the decision to compensate", "refund"]);

    const paid = (await orders.find(id)).paid;
    const charged = (await creditOf(user)) === 90;
    const taken = (await stockOf(a)) === 8;
    expect({ paid, charged, taken }).toEqual({ paid, charged: paid, taken: paid });
    // Every answer given for the order agrees with what the databases say.
    expect(outcomes.map((o) => o.paid)).toEqual([paid, paid]);
  });

  test(
    "a checkout that comes after a failure was answered, while its compensations still run, is " +
      "a new attempt once they end",
    async () => {
      const orders = createOrders(orderStore, INSTANCE, TIMING.sagaLeaseMs);
      const { id, item: a, user } = await newOrder(orders, 1, 4);

      // The restore is held until the second checkout has arrived, and funds have been added.
      const secondArrived = Promise.withResolvers<void>();
      const slowRestore = scripted(real.stock, async (action, send) => {
        if (action === "restore") await secondArrived.promise;
        return send();
      });
      const checkout = createCheckout(orders, { stock: slowRestore, payment: real.payment });

      const first = await checkout.checkout(id);
      expect(first).toMatchObject({ paid: false, error: { code: "insufficient_credit" } });
      expect(await sagaStatus(id)).toBe("compensating");
      await post(`${payment.url}/add_funds/${user}/1`);
      const second = checkout.checkout(id);
      secondArrived.resolve();
      expect(await second).toEqual({ paid: true });
      expect([await stockOf(a), await creditOf(user)]).toEqual([9, 0]);
    },
  );

  test(
    "a sweep's claim of an attempt that failed after the sweep saw it orphaned starts no new " +
      "attempt, even one that would now be paid",
    async () => {
      const orders = createOrders(orderStore, INSTANCE, TIMING.sagaLeaseMs);
      const { id, item: a, user } = await newOrder(orders, 1, 4);
      expect(await createCheckout(orders, real).checkout(id)).toMatchObject({
        paid: false,
        error: { code: "insufficient_credit" },
      });
      expect(await sagaFinished(id)).toBe(true);
      // What the sweep read: the attempt, still unfinished then. Since then it failed, and money came in.
      const seenBySweep = (await orders.find(id)).saga.opId;
      await post(`${payment.url}/add_funds/${user}/1`);

      const { peers, sent } = countingPeers();
      const sweeper = createCheckout(createOrders(orderStore, "order-replica-sweeping", TIMING.sagaLeaseMs), peers);
      expect(await sweeper.checkout(id, seenBySweep)).toMatchObject({ paid: false });
      expect(sent).toEqual([]);
      const order = await orders.find(id);
      expect([order.paid, order.saga.status, order.saga.opId]).toEqual([false, "failed", seenBySweep]);
      expect([await stockOf(a), await creditOf(user)]).toEqual([ITEM_UNITS, 5]);
    },
  );

  test("a compensation the participant refuses is sent again until it is applied, and only then is the saga failed", async () => {
    const timing = { ...TIMING, forwardStepDeadlineMs: 100 as typeof TIMING.forwardStepDeadlineMs };
    const orders = createOrders(orderStore, INSTANCE, TIMING.sagaLeaseMs);
    const { id, item: a, user } = await newOrder(orders, 2, 100);

    // The charge is applied but its answer is lost; the refund is refused twice (as a refund past
    // 2^53-1 would be) before it goes through.
    let refunds = 0;
    const payment = scripted(real.payment, async (action, send) => {
      if (action === "charge") {
        await send();
        return { kind: "unknown", reason: "scripted: the answer was lost" };
      }
      if (action === "refund" && ++refunds <= 2)
        return { kind: "refused", error: new AppError(400, "invalid_input", "scripted: would exceed") };
      return send();
    });
    const checkout = createCheckout(orders, { stock: real.stock, payment }, timing);
    expect(await checkout.checkout(id)).toMatchObject({ paid: false, error: { code: "peer_unavailable" } });
    expect(await sagaFinished(id)).toBe(true);
    expect(await sagaStatus(id)).toBe("failed");
    expect({ refunds, stock: await stockOf(a), credit: await creditOf(user) }).toEqual({
      refunds: 3,
      stock: ITEM_UNITS,
      credit: 100,
    });
  });

  test(
    "a checkout that comes while the previous attempt cannot finish undoing answers 409 " +
      "checkout_in_progress at the answer deadline",
    async () => {
      const timing = {
        ...TIMING,
        forwardStepDeadlineMs: 100 as typeof TIMING.forwardStepDeadlineMs,
        checkoutAnswerDeadlineMs: 500 as typeof TIMING.checkoutAnswerDeadlineMs,
      };
      const orders = createOrders(orderStore, INSTANCE, TIMING.sagaLeaseMs);
      const { id, item: a, user } = await newOrder(orders, 2, 100);

      // The charge is applied but its answer is lost; the refund is refused until the test lets it through.
      let refusing = true;
      const payment = scripted(real.payment, async (action, send) => {
        if (action === "charge") {
          await send();
          return { kind: "unknown", reason: "scripted: the answer was lost" };
        }
        if (action === "refund" && refusing)
          return { kind: "refused", error: new AppError(400, "invalid_input", "scripted: would exceed") };
        return send();
      });
      const checkout = createCheckout(orders, { stock: real.stock, payment }, timing);
      expect(await checkout.checkout(id)).toMatchObject({ paid: false, error: { code: "peer_unavailable" } });
      expect(await checkout.checkout(id)).toMatchObject({ paid: false, error: { code: "checkout_in_progress" } });

      refusing = false;
      expect(await sagaFinished(id)).toBe(true);
      expect([await stockOf(a), await creditOf(user)]).toEqual([ITEM_UNITS, 100]);
    },
  );
});
