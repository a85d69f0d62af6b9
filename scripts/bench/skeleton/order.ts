/**
 * Skeleton order service. A checkout does what the real saga's happy path costs at the least:
 * one call to stock, then one to payment (in that order, as the saga does), then one Redis write
 * marking the order paid.
 */
import { json, serveSkeleton } from "./shared";

/** Units and money per skeleton checkout; the skeletons never refuse, so any value will do. */
const UNITS_PER_CHECKOUT = 1;
/** Warm connections kept per peer kind: above the gateway's concurrency, so none is reopened under load. */
const PEER_MAX_IDLE_SOCKETS = 512;

serveSkeleton("order", (config, redis) => {
  // The active replica of each peer, as the real order service calls them (the others stand by).
  const stock = config.stockUrls[0]!;
  const payment = config.paymentUrls[0]!;
  // A session of its own keeps one pool of warm connections to the peers, as a real service would.
  const peers = new Bun.FetchSession({ keepAlive: { maxIdleSockets: PEER_MAX_IDLE_SOCKETS } });
  const post = { method: "POST" } as const;

  async function call(url: string): Promise<boolean> {
    const res = await peers.fetch(url, post);
    await res.arrayBuffer();
    return res.ok;
  }

  return {
    "/checkout/:order_id": {
      POST: async (req) => {
        const { order_id } = req.params as { order_id: string };
        if (!(await call(`${stock}/subtract/${order_id}/${UNITS_PER_CHECKOUT}`))) {
          return json({ error: "peer_failed", message: "stock skeleton refused" }, 502);
        }
        if (!(await call(`${payment}/pay/${order_id}/${UNITS_PER_CHECKOUT}`))) {
          return json({ error: "peer_failed", message: "payment skeleton refused" }, 502);
        }
        await redis.set(`order:${order_id}:paid`, "1");
        return json({ order_id, paid: true });
      },
    },
  };
});
