/**
 * Checkout, as the API describes it: the saga the order service runs for POST /checkout/{order_id}.
 *   1. take the stock of every item of the order (stock sums the quantities of one item);
 *   2. charge the order's total to its user;
 *   3. mark the order paid.
 * If a step is refused, every step already done is undone in reverse order (restore stock, refund).
 *
 * What the answers mean:
 * - 200: the order is paid, durably (its record is in the log).
 * - 409 naming a step's refusal (such as insufficient_stock, insufficient_credit, unknown_item,
 *   unknown_user): the decision to undo is durable, and nothing stays taken once the compensations
 *   have run (they run on after the answer, whoever drives them).
 * - 409 peer_unavailable: a participant's answer stayed unknown past the forward steps' deadline;
 *   every step is undone, as any of them may have been applied.
 * - 409 checkout_in_progress: the order's previous attempt is still undoing its steps.
 * - 503 peer_unavailable: the attempt is driven by another process, and its outcome was not known
 *   by the answer deadline; the checkout, sent again, answers it.
 *
 * Each step is sent with the attempt's operation id: the participant applies it once, answers a repeat
 * with its first outcome, and a compensation fences a step that never arrived. That is what lets the
 * engine (saga-engine.ts) send a step again, or let another process take the saga over, at any moment.
 * A new step: one entry below, and its participant's endpoint (docs/saga.md).
 */
import { TIMING, type Timing } from "@checkout/common/timing";
import type { Order } from "./order-rules";
import type { OrderStore } from "./orders";
import type { PeerAnswer, Peers } from "./peers";
import type { Saga } from "./saga-attempt";
import { createSagaEngine, type SagaEngine } from "./saga-engine";
import { sagaChanges } from "./saga-record";

const nothingToDo = async (): Promise<PeerAnswer> => ({ kind: "ok", body: {} });

/** The checkout saga of the attempt `order.saga` holds: its steps, in order, and what ends it. */
export function checkoutSaga(order: Order, peers: Peers): Saga {
  const opId = order.saga.opId;
  const items = { items: order.items };
  const charge = { user_id: order.userId, amount: order.totalCost };
  return {
    steps: [
      {
        name: "take_stock",
        forward: order.items.length ? () => peers.stock.step("take", opId, items) : nothingToDo,
        compensate: order.items.length ? () => peers.stock.step("restore", opId, items) : nothingToDo,
      },
      {
        name: "charge_credit",
        forward: () => peers.payment.step("charge", opId, charge),
        compensate: () => peers.payment.step("refund", opId, charge),
      },
    ],
    // Every step done: the order is marked paid (only while the saga runs), and only then answered 200.
    done: { op: "order.saga_paid", change: sagaChanges.paid() },
  };
}

/** Checkout, run durably by the saga engine. */
export const createCheckout = (orders: OrderStore, peers: Peers, timing: Timing = TIMING) =>
  createSagaEngine(orders, (order) => checkoutSaga(order, peers), timing);

export type Checkout = SagaEngine;
