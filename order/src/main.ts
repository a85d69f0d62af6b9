import { TIMING } from "@checkout/common/config";
import { runService } from "@checkout/common/service";
import { orderApp } from "./app";
import { createOrders } from "./orders";
import { createPeers } from "./peers";
import { createCheckout } from "./saga";
import { createStats } from "./stats";

/** How long a stopping order process waits for the sagas it drives to finish (the rest are resumed by others). */
const SAGA_DRAIN_MS = 3_000;

await runService("order", (config, store) => {
  const orders = createOrders(store, config.instanceId, TIMING.sagaLeaseMs);
  const peers = createPeers(config.stockUrls, config.paymentUrls, config.internalSecret, config.peerBalancing);
  const checkout = createCheckout(orders, peers);
  return {
    app: orderApp(orders, checkout, peers, createStats(orders, peers, store.client), config.internalSecret),
    onStarted: () => checkout.start(),
    onStopping: async () => {
      checkout.stopSweeping();
      const until = Date.now() + SAGA_DRAIN_MS;
      while (checkout.inFlight() > 0 && Date.now() < until) await Bun.sleep(20);
      checkout.stop();
    },
  };
});
