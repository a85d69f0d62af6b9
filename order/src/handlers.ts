/**
 * What each order route does once its request is valid: the orders and their saga record (orders.ts),
 * the checkout saga (saga.ts), the peers (peers.ts) and the dashboard's figures (stats.ts) put
 * together. app.ts validates requests and shapes answers around these.
 */
import { AppError, unknown } from "@checkout/common/errors";
import { metrics } from "@checkout/common/metrics";
import type { Order } from "./order-rules";
import type { OrderStore } from "./orders";
import type { Peers } from "./peers";
import type { Checkout } from "./saga";
import { type SagasInFlight, sagasInFlight } from "./sagas-in-flight";
import type { StatsSource } from "./stats";

export function createHandlers(orders: OrderStore, checkout: Checkout, peers: Peers, stats: StatsSource) {
  return {
    create: (userId: string): Promise<string> => orders.create(userId),

    find: (orderId: string): Promise<Order> => orders.find(orderId),

    /** Adds `quantity` units of an item to an order, at the item's price in stock. */
    async addItem(orderId: string, itemId: string, quantity: number): Promise<Order> {
      // Cheap refusals first: no call to stock for an order that does not exist or cannot change.
      await orders.find(orderId);
      const item = await peers.stock.get(`/find/${itemId}`);
      if (item.kind === "refused") throw item.error.status === 404 ? unknown("item", itemId) : item.error;
      if (item.kind === "unknown")
        throw new AppError(503, "peer_unavailable", `could not look up item ${itemId}: ${item.reason}`);
      return orders.addItem(orderId, itemId, quantity, Number(item.body.price));
    },

    /** Pays the order (saga.ts), or throws the refusal its saga decided; counted in the checkout metrics. */
    async checkout(orderId: string): Promise<void> {
      metrics.checkoutsInFlight.inc();
      const outcome = await checkout.checkout(orderId).finally(() => metrics.checkoutsInFlight.dec());
      metrics.checkouts.inc(
        outcome.paid ? { outcome: "paid", reason: "" } : { outcome: "refused", reason: outcome.error.code },
      );
      if (!outcome.paid) throw outcome.error;
    },

    batchInit: (count: number, itemCount: number, userCount: number, itemPrice: number): Promise<void> =>
      orders.batchInit(count, itemCount, userCount, itemPrice),

    stats: () => stats.current(),

    /** The unfinished sagas, for an operator (sagas-in-flight.ts). */
    async sagasInFlight(): Promise<SagasInFlight> {
      const found = await orders.findMany(await orders.unfinishedSagas());
      return sagasInFlight(found, Date.now(), checkout.lastStepError);
    },
  };
}

export type OrderHandlers = ReturnType<typeof createHandlers>;
