/**
 * A replica that comes back at another address takes requests again. order-1, then stock-1, is
 * killed (`docker kill`), its address taken by another container, and started again at a new one;
 * then their standbys, order-2 and stock-2, are killed. Checkouts still succeed, which only order-1
 * and stock-1 at their new addresses can do: the gateway found order-1 there (gateway/run.sh), and
 * the order service found stock-1 (order/src/replica.ts, Bun's DNS cache kept to a second).
 */
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { CheckoutWorld } from "../support/checkout-world";
import { CONTAINER_STACK_START_TIMEOUT_MS, startContainerStack, type ContainerStack } from "../support/container-stack";

setDefaultTimeout(300_000);

const ORDERS = 300;
const CLIENTS = 16;

let shop: ContainerStack;
let world: CheckoutWorld;

beforeAll(async () => {
  shop = await startContainerStack();
  world = new CheckoutWorld(shop.gatewayUrl, {
    items: 20,
    stockEach: 1_000,
    scarce: 2,
    users: 200,
    creditEach: 1_000,
    poor: 10,
  });
  await world.create();
}, CONTAINER_STACK_START_TIMEOUT_MS);

afterAll(async () => {
  world?.close();
  await shop?.stop();
});

test("order-1 and stock-1 back at new addresses serve every checkout once their standbys are gone", async () => {
  for (const replica of ["order-1", "stock-1"]) {
    const before = await shop.address(replica);
    await shop.dockerKill(replica);
    const taken = await shop.occupyFreeAddress();
    await shop.dockerStart(replica);
    const after = await shop.address(replica);
    // The scenario as intended: its old address is another container's now, and it has a new one.
    expect({ replica, taken, moved: after !== before }).toEqual({ replica, taken: before, moved: true });
  }
  await shop.dockerKill("order-2");
  await shop.dockerKill("stock-2");

  const load = await world.checkOut(await world.addOrders(ORDERS), CLIENTS);
  console.log(`[containers] new addresses: ${JSON.stringify(load.counts)} ${JSON.stringify(load.failureCodes)}`);
  expect({ "5xx": load.counts["5xx"], network: load.counts.network }).toEqual({ "5xx": 0, network: 0 });
  expect(load.counts["2xx"]).toBeGreaterThan(0);

  await shop.dockerStart("order-2");
  await shop.dockerStart("stock-2");
  await world.settle(shop.redisPorts.order);
  const report = await world.invariants();
  expect(report.details).toEqual([]);
});
