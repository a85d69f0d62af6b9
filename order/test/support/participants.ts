/**
 * What every order-side test file starts first: the stock and payment services, each on its own
 * real Redis with its log writer, and the order service's Redis.
 */
import { startRedis, type RedisServer } from "../../../common/test/support/redis-server";
import { startService, type RunningService } from "../../../common/test/support/service";

export type Participants = {
  stock: RunningService;
  payment: RunningService;
  orderRedis: RedisServer;
  /** Stops the services, then every Redis. */
  stop(): Promise<void>;
};

export async function startParticipants(): Promise<Participants> {
  const redises = await Promise.all([
    startRedis({ logFor: { service: "stock" } }),
    startRedis({ logFor: { service: "payment" } }),
    startRedis({ logFor: { service: "order" } }),
  ]);
  const [forStock, forPayment, forOrder] = redises;
  const stock = await startService("stock", { redisPort: forStock.port });
  const payment = await startService("payment", { redisPort: forPayment.port });
  return {
    stock,
    payment,
    orderRedis: forOrder,
    async stop() {
      await stock.stop();
      await payment.stop();
      for (const redis of redises) await redis.stop();
    },
  };
}
