/**
 * The order service, wired: its orders on its store, its peers, the checkout saga that drives them,
 * the dashboard's figures, and its routes (common/src/service.ts has the shape).
 */
import type { ServiceConfig } from "@checkout/common/config";
import { TIMING } from "@checkout/common/timing";
import { addServiceRoutes, type Service, type ServiceDeps } from "@checkout/common/service";
import { orderApp } from "./app";
import { createHandlers } from "./handlers";
import { createOrders } from "./orders";
import { createPeers } from "./peers";
import { type Checkout, createCheckout } from "./saga";
import { createStats } from "./stats";

/** How long a stopping order process waits for the sagas it drives to finish (the rest are resumed by others). */
const SAGA_DRAIN_MS = 3_000;
const DRAIN_POLL_MS = 20;

/** `checkout`: the saga driver, which tests also drive directly. */
export type OrderService = Service & { checkout: Checkout };

export function build(config: ServiceConfig, { store }: ServiceDeps): OrderService {
  const orders = createOrders(store, config.instanceId, TIMING.sagaLeaseMs);
  const peers = createPeers(config.stockUrls, config.paymentUrls, config.internalSecret, config.peerBalancing);
  const checkout = createCheckout(orders, peers);
  const handlers = createHandlers(orders, checkout, peers, createStats(orders, peers, store.client));
  const app = orderApp(handlers, config.internalSecret);
  addServiceRoutes(app, "order", store, config.internalSecret);
  return {
    app,
    checkout,
    /** Keeps this process's liveness key and sweeps for sagas nobody drives (saga.ts). */
    start: () => checkout.start(),
    async stop() {
      checkout.stopSweeping();
      const until = Date.now() + SAGA_DRAIN_MS;
      while (checkout.inFlight() > 0 && Date.now() < until) await Bun.sleep(DRAIN_POLL_MS);
      checkout.stop();
    },
  };
}
