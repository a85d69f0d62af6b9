/**
 * One replica of each service, the benchmark's consistency shape (one item with stock 100, 1000
 * users with credit 1, 1000 orders checked out at once), and the order service killed mid-way.
 * With no other replica, checkouts in flight at the kill get a 502 from the gateway: their outcome is
 * unknown to the client. Once the supervisor has restarted the order service and its sweep has
 * finished the orphaned sagas, the books must balance exactly and every 2xx/4xx must be true.
 */
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { findFreePortOffset } from "../../lib/ports";
import { memoryOutput, startStack, type Stack } from "../../lib/stack";
import { CheckoutWorld } from "../support/checkout-world";

setDefaultTimeout(180_000);

const ORDERS = 1_000;
const STOCK = 100;
/** The kill lands once the first checkout is answered: the service is deciding, the rest in flight. */
const KILL_AFTER_ANSWERS = 10;

const stateDir = mkdtempSync(join(tmpdir(), "kill-single-"));
const output = memoryOutput(2_000);
let stack: Stack;
let world: CheckoutWorld;

beforeAll(async () => {
  stack = await startStack({ replicas: 1, portOffset: await findFreePortOffset(1), stateDir, output });
  world = new CheckoutWorld(stack.gatewayUrl, {
    items: 1,
    stockEach: STOCK,
    scarce: 0,
    users: ORDERS,
    creditEach: 1,
    poor: 0,
  });
  await world.create();
});

afterAll(async () => {
  world?.close();
  await stack?.stop();
  rmSync(stateDir, { recursive: true, force: true });
});

test("the order service killed during 1000 concurrent checkouts: once restarted, nothing is lost or created", async () => {
  const orders = await world.placeOrders(
    Array.from({ length: ORDERS }, (_, i) => ({ user: String(i), lines: [["0", 1]] as const })),
  );
  const restartsBefore = stack.restartCount("order-1");
  const load = await world.checkOut(orders, ORDERS, {
    afterAnswers: KILL_AFTER_ANSWERS,
    inject: () => stack.kill("order-1", "SIGKILL"),
  });
  await stack.waitHealthy();
  await world.settle(stack.ports.redis.order);
  console.log(
    `[kill] single replica, order-1 killed: ${JSON.stringify(load.counts)} ${JSON.stringify(load.failureCodes)}`,
  );

  expect(stack.restartCount("order-1")).toBe(restartsBefore + 1);
  const report = await world.invariants();
  if (!report.ok) console.error(output.lines().slice(-80).join("\n"));
  expect(report.details).toEqual([]);
  // The kill landed while checkouts were in flight, it cut some of them, and the ones answered
  // before it were decided.
  expect(load.faultAt!.inFlight).toBeGreaterThan(0);
  expect(load.counts["5xx"] + load.counts.network).toBeGreaterThan(0);
  expect(load.counts["2xx"]).toBeLessThanOrEqual(STOCK);
});
