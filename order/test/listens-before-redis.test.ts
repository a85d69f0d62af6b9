/**
 * An order process restarted while its Redis is still down (both killed at once; a Redis replaying
 * a long log takes seconds): it listens before Redis answers and holds a checkout until Redis does,
 * instead of leaving the gateway no replica to send it to, which it answers 502 (and checkers count
 * a 502 as a successful checkout).
 */
import { expect, setDefaultTimeout, test } from "bun:test";
import { readFileSync } from "node:fs";
import { connect } from "node:net";
import { join } from "node:path";
import { REPO_ROOT } from "@checkout/common/config";
import { eventually } from "../../common/test/support/eventually";
import { get, post, TEST_INTERNAL_SECRET } from "../../common/test/support/http";
import { freePort, startRedis } from "../../common/test/support/redis-server";
import { startService } from "../../common/test/support/service";
import { scratch } from "../../common/test/support/scratch";

/** Real servers on a shared machine: generous, so that load elsewhere never fails a test by time alone. */
setDefaultTimeout(60_000);

/** A process that does not answer its health check, or read a request sent to it, within this long is stuck. */
const PROCESS_TIMEOUT_MS = 30_000;
/** The kernel's TCP tables (IPv4, IPv6): per connection, the bytes not yet acknowledged and not yet read. */
const TCP_TABLES = ["/proc/net/tcp", "/proc/net/tcp6"];

const { logDir, redises, services, processes } = scratch("checkout-listens-");

/** The real order service (order/src/main.ts) as a process of its own. */
async function spawnOrder(
  redisPort: number,
  peers: { stock: string; payment: string },
): Promise<{ url: string; child: ReturnType<typeof Bun.spawn> }> {
  const port = await freePort();
  const child = Bun.spawn(["bun", join(REPO_ROOT, "order/src/main.ts")], {
    env: {
      ...process.env,
      PORT: String(port),
      REDIS_PORT: String(redisPort),
      FAULT_DIR: logDir,
      INSTANCE_ID: `order-${port}`,
      STOCK_URLS: peers.stock,
      PAYMENT_URLS: peers.payment,
      INTERNAL_SECRET: TEST_INTERNAL_SECRET,
    },
    stdout: "ignore",
    stderr: "ignore",
  });
  processes.push(child);
  return { url: `http://127.0.0.1:${port}`, child };
}

const answers = async (url: string) => (await get(`${url}/health`).catch(() => ({ status: 0 }))).status;

/**
 * A checkout sent on a socket of the test's own, so that its client port is known: `written` resolves
 * with that port once the request is handed to the kernel, `answer` with the status and JSON body.
 */
function checkoutOnOwnSocket(
  baseUrl: string,
  orderId: string,
): { written: Promise<number>; answer: Promise<{ status: number; body: unknown }> } {
  const { hostname, port } = new URL(baseUrl);
  const socket = connect({ host: hostname, port: Number(port) });
  const request = `POST /checkout/${orderId} HTTP/1.1\r\nHost: ${hostname}:${port}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`;
  const written = new Promise<number>((resolve, reject) => {
    socket.on("error", reject);
    socket.on("connect", () => socket.write(request, () => resolve(socket.localPort!)));
  });
  const answer = new Promise<{ status: number; body: unknown }>((resolve, reject) => {
    const chunks: Buffer[] = [];
    socket.on("data", (chunk: Buffer) => chunks.push(chunk));
    socket.on("error", reject);
    socket.on("close", () => {
      const text = Buffer.concat(chunks).toString("utf8");
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? NaN);
      const payload = text.slice(text.indexOf("\r\n\r\n") + 4);
      let body: unknown = payload;
      try {
        body = JSON.parse(payload);
      } catch {
        // Not JSON (or no answer at all): the raw text is the body, for the failure message.
      }
      resolve({ status, body });
    });
  });
  return { written, answer };
}

/** The queues of the loopback TCP connection from `localPort` to `remotePort`, as the kernel lists them. */
function tcpQueues(localPort: number, remotePort: number): { unacknowledged: number; unread: number } | undefined {
  const portOf = (address: string) => parseInt(address.slice(address.lastIndexOf(":") + 1), 16);
  for (const table of TCP_TABLES) {
    for (const row of readFileSync(table, "utf8").split("\n").slice(1)) {
      const [, local, remote, , queues] = row.trim().split(/\s+/);
      if (!local || !remote || !queues || portOf(local) !== localPort || portOf(remote) !== remotePort) continue;
      const [unacknowledged, unread] = queues.split(":").map((hex) => parseInt(hex, 16));
      return { unacknowledged: unacknowledged!, unread: unread! };
    }
  }
  return undefined;
}

/** Whether the server on `serverPort` has read every byte the client on `clientPort` sent it. */
function readByServer(clientPort: number, serverPort: number): boolean {
  return tcpQueues(clientPort, serverPort)?.unacknowledged === 0 && tcpQueues(serverPort, clientPort)?.unread === 0;
}

test("an order process whose Redis is down listens anyway, and a checkout sent to it is answered once Redis is back", async () => {
  const [forOrder, forStock, forPayment] = await Promise.all([
    startRedis({ logFor: { service: "order" } }),
    startRedis({ logFor: { service: "stock" } }),
    startRedis({ logFor: { service: "payment" } }),
  ]);
  redises.push(forOrder, forStock, forPayment);
  const stock = await startService("stock", { redisPort: forStock.port });
  const payment = await startService("payment", { redisPort: forPayment.port });
  services.push(stock, payment);
  const peers = { stock: stock.url, payment: payment.url };

  const first = await spawnOrder(forOrder.port, peers);
  expect(await eventually(async () => (await answers(first.url)) === 200, PROCESS_TIMEOUT_MS, 50)).toBe(true);
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
  expect(await eventually(async () => (await answers(second.url)) === 503, PROCESS_TIMEOUT_MS, 50)).toBe(true);

  // Redis comes back only once the process has read the checkout: it holds it while Redis is down.
  const checkout = checkoutOnOwnSocket(second.url, orderId);
  const clientPort = await checkout.written;
  const orderPort = Number(new URL(second.url).port);
  expect(await eventually(async () => readByServer(clientPort, orderPort), PROCESS_TIMEOUT_MS)).toBe(true);
  await forOrder.restart();
  expect(await checkout.answer).toEqual({ status: 200, body: { order_id: orderId, paid: true } });
  expect((await get(`${stock.url}/find/${itemId}`)).body.stock).toBe(1);
  expect((await get(`${payment.url}/find_user/${userId}`)).body.credit).toBe(90);
});
