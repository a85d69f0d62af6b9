/**
 * An order process restarted while its Redis is still down (both killed at once; a Redis replaying
 * a long log takes seconds): it listens before Redis answers and holds a checkout until Redis does,
 * instead of leaving the gateway no replica to send it to, which it answers 502 (and checkers count
 * a 502 as a successful checkout).
 */
import { expect, setDefaultTimeout, test } from "bun:test";
import { join } from "node:path";
import { REPO_ROOT } from "@checkout/common/config";
import { eventually } from "../../common/test/support/eventually";
import { get, post } from "../../common/test/support/http";
import { freePort, startRedis } from "../../common/test/support/redis-server";
import { startService } from "../../common/test/support/service";
import { scratch } from "../../common/test/support/scratch";

/** Real servers on a shared machine: generous, so that load elsewhere never fails a test by time alone. */
setDefaultTimeout(60_000);

/** How long the order's Redis stays down while a checkout waits on the restarted process. */
const REDIS_DOWN_MS = 1_500;

const { logDir, redises, services, processes } = scratch("checkout-listens-");

/** The real order service (order/src/main.ts) as a process of its own. */
async function spawnOrder(redisPort: number, peers: { stock: string; payment: string }): Promise<{ url: string; child: ReturnType<typeof Bun.spawn> }> {
  const port = await freePort();
  const child = Bun.spawn(["bun", join(REPO_ROOT, "order/src/main.ts")], {
    env: { ...process.env, PORT: String(port), REDIS_PORT: String(redisPort), LOG_DIR: logDir, INSTANCE_ID: `order-${port}`, STOCK_URLS: peers.stock, PAYMENT_URLS: peers.payment },
    stdout: "ignore",
    stderr: "ignore",
  });
  processes.push(child);
  return { url: `http://127.0.0.1:${port}`, child };
}

const answers = async (url: string) => (await get(`${url}/health`).catch(() => ({ status: 0 }))).status;

test("an order process whose Redis is down listens anyway, and a checkout sent to it is answered once Redis is back", async () => {
  const [forOrder, forStock, forPayment] = await Promise.all([startRedis(), startRedis(), startRedis()]);
  redises.push(forOrder, forStock, forPayment);
  const stock = await startService("stock", { redisPort: forStock.port });
  const payment = await startService("payment", { redisPort: forPayment.port });
  services.push(stock, payment);
  const peers = { stock: stock.url, payment: payment.url };

  const first = await spawnOrder(forOrder.port, peers);
  expect(await eventually(async () => (await answers(first.url)) === 200, 15_000, 50)).toBe(true);
  const itemId = (await post(`${stock.url}/item/create/5`)).body.item_id;
  await post(`${stock.url}/add/${itemId}/3`);
  const userId = (await post(`${payment.url}/create_user`)).body.user_id;
  await post(`${payment.url}/add_funds/${userId}/100`);
  const orderId = (await post(`${first.url}/create/${userId}`)).body.order_id;
  expect((await post(`${first.url}/addItem/${orderId}/${itemId}/2`)).status).toBe(200);

  // The order process and its Redis die together; a new process starts while Redis is still down.
  first.child.kill("SIGKILL");
  await first.child.exited;
  await forOrder.kill();
  const second = await spawnOrder(forOrder.port, peers);
  expect(await eventually(async () => (await answers(second.url)) === 503, 15_000, 50)).toBe(true);

  const checkout = post(`${second.url}/checkout/${orderId}`);
  await Bun.sleep(REDIS_DOWN_MS);
  await forOrder.restart();
  expect(await checkout).toEqual({ status: 200, body: { order_id: orderId, paid: true } });
  expect((await get(`${stock.url}/find/${itemId}`)).body.stock).toBe(1);
  expect((await get(`${payment.url}/find_user/${userId}`)).body.credit).toBe(90);
});
