/**
 * An order: its stored form, and the pure rules over it (adding an item, claiming its checkout,
 * owning its saga). The state changes on Redis that apply them are in orders.ts; the saga record's own
 * rules in saga-record.ts.
 */
import { type AppError, badInput, refused, unknown } from "@checkout/common/errors";
import { MAX_ITEMS_PER_STEP } from "@checkout/common/internal";
import { MAX_INTEGER } from "@checkout/common/limits";
import { operationId } from "@checkout/common/retention";
import type { Codec, Decision } from "@checkout/common/store";
import { isUnfinished, NO_SAGA, type SagaRecord, type SagaStatus } from "./saga-record";

export type Order = {
  userId: string;
  items: Array<[string, number]>;
  totalCost: number;
  paid: boolean;
  saga: SagaRecord;
};

export const NO_DRIVERS: ReadonlySet<string> = new Set();

/**
 * Stored as six fields: the order's own four, the saga's status on its own (the unfinished-sagas index
 * reads it), and the rest of the saga record as one JSON field, empty while there has been no
 * checkout. Fewer fields is less to encode and send on every saga transition.
 */
export const orderCodec: Codec<Order> = {
  encode: (o) => {
    const { status, ...rest } = o.saga;
    return {
      user_id: o.userId,
      items: JSON.stringify(o.items),
      total_cost: String(o.totalCost),
      paid: o.paid ? "true" : "false",
      saga_status: status,
      saga: status === "none" ? "" : JSON.stringify(rest),
    };
  },
  decode: (h) => ({
    userId: h.user_id ?? "",
    items: JSON.parse(h.items ?? "[]") as Array<[string, number]>,
    totalCost: Number(h.total_cost),
    paid: h.paid === "true",
    saga: h.saga
      ? { status: (h.saga_status ?? "none") as SagaStatus, ...(JSON.parse(h.saga) as Omit<SagaRecord, "status">) }
      : NO_SAGA,
  }),
};

export const newOrder = (userId: string, items: Array<[string, number]> = [], totalCost = 0): Order => ({
  userId,
  items,
  totalCost,
  paid: false,
  saga: NO_SAGA,
});

export function withItem(
  order: Order | null,
  orderId: string,
  itemId: string,
  quantity: number,
  price: number,
): Order | AppError {
  if (!order) return unknown("order", orderId);
  if (order.paid) return refused("order_already_paid", `order ${orderId} is paid; items can no longer be added`);
  if (isUnfinished(order.saga)) return refused("checkout_in_progress", `order ${orderId} is being checked out`);
  if (order.items.length >= MAX_ITEMS_PER_STEP)
    return refused("order_too_large", `order ${orderId} already holds ${MAX_ITEMS_PER_STEP} lines`);
  const totalCost = order.totalCost + quantity * price;
  if (!Number.isSafeInteger(totalCost) || totalCost > MAX_INTEGER)
    return badInput(`total cost of order ${orderId} would exceed ${MAX_INTEGER}`);
  return { ...order, items: [...order.items, [itemId, quantity]], totalCost };
}

/** What a checkout request finds when it arrives, and the claim it makes. */
export type CheckoutStart =
  | { kind: "paid" }
  /** `takeover`: the saga was another driver's, whose lease ran out. */
  | { kind: "drive"; order: Order; takeover: boolean }
  /**
   * Another process (`driver`) drives the attempt `opId`. `decided`: it has already decided and answered the
   * attempt's failure (it is compensating), so this request is for a new attempt, once that one ends.
   */
  | { kind: "wait"; opId: string; decided: boolean; driver: string }
  /** The attempt a sweep came to resume has ended (failed) since it looked: nothing to do. */
  | { kind: "ended" };

/**
 * `goneDrivers`: processes whose liveness key was found expired (their sagas are taken over at once).
 * `resume`: the attempt an upkeep sweep saw orphaned and comes to take over. Only that attempt is
 * taken over: if it ended meanwhile, no new one is started (no client asked for one, and one that
 * succeeded would charge an order whose checkout was answered 409).
 */
export function startCheckout(
  order: Order | null,
  orderId: string,
  me: string,
  now: number,
  leaseMs: number,
  nonce: string,
  goneDrivers: ReadonlySet<string> = NO_DRIVERS,
  resume?: string,
): Decision<CheckoutStart | AppError> & { order?: Order } {
  if (!order) return { result: unknown("order", orderId) };
  if (order.paid) return { result: { kind: "paid" } };
  const saga = order.saga;
  if (resume !== undefined && !(isUnfinished(saga) && saga.opId === resume)) return { result: { kind: "ended" } };
  if (isUnfinished(saga)) {
    if (saga.leaseUntil > now && saga.owner !== me && !goneDrivers.has(saga.owner)) {
      return { result: { kind: "wait", opId: saga.opId, decided: saga.status === "compensating", driver: saga.owner } };
    }
    // Its driver is gone (lease expired, or no longer alive): take the saga over where it stands.
    const claimed = { ...order, saga: { ...saga, owner: me, leaseUntil: now + leaseMs } };
    return { result: { kind: "drive", order: claimed, takeover: saga.owner !== me }, order: claimed };
  }
  const attempt = saga.attempt + 1;
  const started: Order = {
    ...order,
    saga: {
      status: "running",
      attempt,
      opId: operationId(orderId, attempt, nonce, now),
      step: 0,
      error: null,
      owner: me,
      leaseUntil: now + leaseMs,
    },
  };
  return { result: { kind: "drive", order: started, takeover: false }, order: started };
}

/** A saga transition is only valid for its driver's attempt, while the driver still holds it. */
export function ownsSaga(order: Order | null, opId: string, me: string): order is Order {
  return order !== null && order.saga.opId === opId && order.saga.owner === me && isUnfinished(order.saga);
}
