/**
 * The Guarantees (docs/design.md), tested the hard way: a real stack (two replicas of each service),
 * checkouts streaming through the gateway, and SIGKILL for one process at a time — a service
 * replica, each Redis, the gateway, a Redis with its data folder wiped — plus crash points inside
 * the saga, inside a commit, and in the log writers, each followed by a Redis wiped and rebuilt
 * from its log. The supervisor restarts what dies (Redis through
 * start_redis_with_recovery.sh); the test only kills and waits. After every round, once the sagas
 * have settled: stock and money are conserved over everything ever done, every 2xx checkout is a
 * paid order and every 4xx one is not.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SERVICES, type ServiceName } from "../../../common/src/config";
import { markerPath } from "../../../common/src/faults";
import { eventually } from "../../../common/test/support/eventually";
import { findFreePortOffset } from "../../lib/ports";
import { memoryOutput, startStack, type Stack } from "../../lib/stack";
import { CheckoutWorld } from "../support/checkout-world";

setDefaultTimeout(180_000);

const REPLICAS = 2;
const ORDERS_PER_ROUND = 300;
const CLIENTS = 32;
/** A fault lands once this many checkouts of a round are answered: the load well under way, most still to come. */
const FAULT_AFTER_ANSWERS = ORDERS_PER_ROUND / 4;
/**
 * Rounds of checkouts go on until every crash point has fired, for this long at most: a restarted
 * replica gets requests again only once the gateway's bench (ACTIVE_BENCH_S) or the order service's
 * rejoin period (TIMING.peerRejoinAfterMs) has passed, which may take several rounds.
 */
const CRASH_POINTS_FIRE_WITHIN_MS = 120_000;

/**
 * Crash points armed in the active replica of each service (each fires once, one after the other):
 * right after the stock is taken, before the payment; right after the payment, before the order is
 * marked paid; in stock and payment between a commit to Redis and its log line; and between the log
 * line and the answer (of a restore, and of a charge). The standbys take over while the active
 * replicas restart.
 */
const CRASH_POINTS: Record<string, string> = {
  "order-1": "after_take_stock,after_charge_credit",
  "stock-1": "stock.take.committed_not_logged,stock.restore.logged_not_answered",
  "payment-1": "payment.charge.committed_not_logged,payment.charge.logged_not_answered",
};

/**
 * The log writer's crash points (common/src/log-writer.ts): before an append, after it before its
 * fdatasync, after that before the position is published, before the trim. A writer reaches them at
 * every append, so each is armed in every service's writer by a SIGUSR2 once checkouts are under way.
 */
const WRITER_CRASH_POINTS = [
  "writer.before_append",
  "writer.appended_not_synced",
  "writer.synced_not_published",
  "writer.published_not_trimmed",
];
/** A writer armed while checkouts stream appends within moments; this much means it never fired. */
const WRITER_FAULT_TIMEOUT_MS = 30_000;

const stateDir = mkdtempSync(join(tmpdir(), "kill-test-"));
const output = memoryOutput(2_000);
let stack: Stack;
let world: CheckoutWorld;
const tally = { checkouts: 0, kills: 0, "2xx": 0, "4xx": 0, "5xx": 0, network: 0 };

beforeAll(async () => {
  stack = await startStack({
    replicas: REPLICAS,
    portOffset: await findFreePortOffset(REPLICAS),
    stateDir,
    output,
    processEnv: {
      ...Object.fromEntries(Object.entries(CRASH_POINTS).map(([name, point]) => [name, { FAULT_POINT: point }])),
      ...Object.fromEntries(
        SERVICES.map((service) => [`redis-${service}`, { FAULT_POINT_ON_SIGNAL: WRITER_CRASH_POINTS.join(",") }]),
      ),
    },
  });
  world = new CheckoutWorld(stack.gatewayUrl, {
    items: 40,
    stockEach: 250,
    scarce: 6,
    users: 500,
    creditEach: 30,
    poor: 60,
  });
  await world.create();
});

afterAll(async () => {
  world?.close();
  await stack?.stop();
  console.log(
    `[kill] ${tally.checkouts} checkouts, ${tally.kills} kills: ` +
      `${tally["2xx"]} 2xx, ${tally["4xx"]} 4xx, ${tally["5xx"]} 5xx, ${tally.network} network errors`,
  );
  rmSync(stateDir, { recursive: true, force: true });
});

/**
 * One round: new orders, checked out while `disaster` happens (if any); then settle and check
 * everything. The disaster starts once a quarter of the round is answered, and must land with
 * checkouts in flight and more still to send, so that the load runs through it.
 */
async function round(disaster?: () => Promise<void>) {
  const orders = await world.addOrders(ORDERS_PER_ROUND);
  const load = await world.checkOut(
    orders,
    CLIENTS,
    disaster && { afterAnswers: FAULT_AFTER_ANSWERS, inject: disaster },
  );
  if (disaster) {
    expect(load.faultAt!.inFlight).toBeGreaterThan(0);
    expect(load.faultAt!.sent).toBeLessThan(orders.length);
  }
  await stack.waitHealthy();
  await world.settle(stack.ports.redis.order);
  tally.checkouts += load.sent;
  console.log(`[kill] round: ${JSON.stringify(load.counts)} ${JSON.stringify(load.failureCodes)}`);
  for (const key of ["2xx", "4xx", "5xx", "network"] as const) tally[key] += load.counts[key];
  const report = await world.invariants();
  if (!report.ok) console.error(report.details.join("\n"), "\n", output.lines().slice(-60).join("\n"));
  expect(report.details).toEqual([]);
  // A round that only refused would prove little.
  expect(load.counts["2xx"]).toBeGreaterThan(0);
  return load;
}

const kill = (name: string) => async () => {
  const before = stack.restartCount(name);
  await stack.kill(name, "SIGKILL");
  tally.kills++;
  await waitForRestart(name, before);
};

async function waitForRestart(name: string, before: number): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (stack.restartCount(name) <= before) {
    if (Date.now() > deadline) throw new Error(`${name} was not restarted`);
    await Bun.sleep(50);
  }
}

describe("under a stream of checkouts", () => {
  test("crash points: after the stock is taken, after the charge, between a commit and its log line", async () => {
    const armed = Object.entries(CRASH_POINTS).map(([name, points]) => ({ name, points: points.split(",").length }));
    const allFired = () => armed.every(({ name, points }) => stack.restartCount(name) >= points);
    // A point fires on the first call that reaches it in its replica. A round can end before a
    // restarted replica gets that call (the standby answers meanwhile), so rounds go on until all fired.
    let fives = 0;
    const deadline = Date.now() + CRASH_POINTS_FIRE_WITHIN_MS;
    do fives += (await round()).counts["5xx"];
    while (!allFired() && Date.now() < deadline);
    for (const { name, points } of armed) {
      expect({ name, restarts: stack.restartCount(name) }).toEqual({ name, restarts: points });
      tally.kills += points;
    }
    // Order replicas that died mid-checkout were stood in for by the other one: no answer was an error.
    expect(fives).toBe(0);
  });

  for (const name of ["order-1", "stock-1", "payment-1"]) {
    test(`SIGKILL of ${name}: another replica answers, the saga finishes, nothing is lost`, async () => {
      const load = await round(kill(name));
      expect(load.counts["5xx"]).toBe(0);
      expect(load.counts.network).toBe(0);
    });
  }

  for (const service of ["order", "stock", "payment"] as const) {
    test(`SIGKILL of redis-${service}: it restarts from its AOF and log, and checkouts wait for it`, async () => {
      await round(kill(`redis-${service}`));
    });
  }

  test("SIGKILL of the gateway: requests in flight are lost to the client, never to the books", async () => {
    await round(kill("gateway"));
  });

  for (const service of ["stock", "payment", "order"] as ServiceName[]) {
    test(`redis-${service} killed and its data folder wiped: rebuilt from the log alone`, async () => {
      await round(async () => {
        tally.kills++;
        await stack.wipeRedisData(service);
      });
    });
  }

  WRITER_CRASH_POINTS.forEach((point, i) => {
    // Each point is followed by the wipe of another service's Redis, in turn.
    const wiped = SERVICES[i % SERVICES.length]!;
    test(`the log writers killed at ${point}, then redis-${wiped} wiped: rebuilt from the log, nothing lost`, async () => {
      await round(async () => {
        for (const service of SERVICES) {
          const pid = stack.writerPid(service);
          expect({ service, running: pid !== undefined }).toEqual({ service, running: true });
          process.kill(pid!, "SIGUSR2");
        }
        for (const service of SERVICES) {
          const fired = await eventually(
            async () => existsSync(markerPath(stack.stateDir, point, `writer-${service}`)),
            WRITER_FAULT_TIMEOUT_MS,
          );
          expect({ service, point, fired }).toEqual({ service, point, fired: true });
          tally.kills++;
        }
        tally.kills++;
        await stack.wipeRedisData(wiped);
      });
    });
  });
});
