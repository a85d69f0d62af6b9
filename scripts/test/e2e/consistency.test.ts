/**
 * The benchmark's consistency shape (API.md), through the gateway of one real stack: 1 item with
 * stock 100 at price 1, 1000 users with credit 1, one single-unit order each, and all 1000 checkouts
 * in flight at once. Exactly 100 may succeed, and the answers must match the databases. Three rounds
 * on the same stack, each with fresh entities; afterwards, every service's log must replay to exactly
 * what its live Redis holds.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { Redis } from "ioredis";
import { SERVICES } from "../../../common/src/config";
import { keys } from "../../../common/src/keyspace";
import { isLivenessKey } from "../../../order/src/keys";
import { recover } from "../../../common/src/recover";
import { startRedis } from "../../../common/test/support/redis-server";
import { redisState } from "../../../common/test/support/redis-state";
import { Api, createSession, SIDE_CONCURRENCY } from "../../bench/client";
import { classify } from "../../bench/load";
import { createHotData, HOT, type HotData } from "../../bench/shapes/hot";
import { readCredit, readOrders, readStock } from "../../bench/state";
import { checkInvariants, type OrderState } from "../../bench/verify";
import { postAllAtOnce, type AllAtOnceResult } from "../support/all-at-once";
import { stateDifferences, untilQuiescent } from "../support/quiescence";
import { startTestStack, TEST_STACK_START_TIMEOUT_MS, type TestStack } from "../support/test-stack";

/** A whole stack on a shared 2-core machine: generous, so that load elsewhere never fails a test by time alone. */
setDefaultTimeout(120_000);

const ROUNDS = 3;
/**
 * Keys a replay does not reproduce: the sequence counter, lines in transit to the log, the durable
 * position, the compaction lock, the processes' starts (the dashboard's, never logged); and the order
 * processes' liveness keys (isLivenessKey).
 */
const NOT_REPLAYED = new Set<string>([
  keys.seq,
  keys.logStream,
  keys.durableLog,
  keys.compactionLock,
  keys.processStarts,
]);

let shop: TestStack;
let api: Api;

beforeAll(async () => {
  shop = await startTestStack();
  api = new Api(shop.gatewayUrl, createSession(SIDE_CONCURRENCY));
}, TEST_STACK_START_TIMEOUT_MS);

afterAll(async () => {
  api?.close();
  await shop?.stop();
});

function sum(values: Iterable<number>): number {
  let total = 0;
  for (const v of values) total += v;
  return total;
}

for (let round = 1; round <= ROUNDS; round++) {
  describe(`round ${round}: ${HOT.users} checkouts at once for ${HOT.stock} units`, () => {
    let data: HotData;
    let checkouts: AllAtOnceResult;
    let orders: OrderState[];
    let stock: Map<string, number>;
    let credit: Map<string, number>;
    const answerOf = (orderId: string) => checkouts.statuses[data.orderIds.indexOf(orderId)]!;

    beforeAll(async () => {
      // One item, its 1000 buyers and their orders, as the benchmark's hot shape makes them.
      data = await createHotData(api);
      checkouts = await postAllAtOnce(data.orderIds.map((id) => `${shop.gatewayUrl}/orders/checkout/${id}`));
      // A 409 is answered once compensation is decided; read the state once it is applied.
      await untilQuiescent(shop);
      stock = await readStock(api, [data.itemId]);
      credit = await readCredit(api, [...data.initialCredit.keys()]);
      orders = await readOrders(api, data.orderIds);
    });

    test(`exactly ${HOT.stock} checkouts answer 2xx and the other ${HOT.users - HOT.stock} answer 409`, () => {
      const byStatus: Record<string, number> = {};
      for (const status of checkouts.statuses) byStatus[status] = (byStatus[status] ?? 0) + 1;
      expect({ byStatus, failureCodes: checkouts.failureCodes }).toEqual({
        byStatus: { 200: HOT.stock, 409: HOT.users - HOT.stock },
        failureCodes: { insufficient_stock: HOT.users - HOT.stock },
      });
    });

    test("the item is sold out", () => {
      expect(stock.get(data.itemId)).toBe(0);
    });

    test(`total credit dropped by exactly ${HOT.stock * HOT.itemPrice}`, () => {
      expect(credit.size).toBe(HOT.users);
      expect(sum(data.initialCredit.values()) - sum(credit.values())).toBe(HOT.stock * HOT.itemPrice);
    });

    test("the orders answered 2xx are exactly the paid ones", () => {
      expect(orders).toHaveLength(HOT.users);
      const paid = orders
        .filter((o) => o.paid)
        .map((o) => o.orderId)
        .sort();
      const succeeded = data.orderIds.filter((id) => classify(answerOf(id)) === "2xx").sort();
      expect(paid).toEqual(succeeded);
    });

    test("no unit of stock and no credit was lost or created, per item and per user", () => {
      const report = checkInvariants({
        initialStock: new Map([[data.itemId, data.initialItemStock]]),
        currentStock: stock,
        initialCredit: data.initialCredit,
        currentCredit: credit,
        orders,
        answers: new Map(data.orderIds.map((id, i) => [id, checkouts.statuses[i]!])),
      });
      expect(report.details).toEqual([]);
    });
  });
}

describe("after the workload", () => {
  beforeAll(async () => {
    await untilQuiescent(shop);
  });

  test.each([...SERVICES])("the %s log replayed into an empty Redis gives exactly the live data", async (service) => {
    const fresh = await startRedis();
    const replayed = new Redis({ host: "127.0.0.1", port: fresh.port, maxRetriesPerRequest: 3 });
    replayed.on("error", () => {});
    try {
      await recover(service, replayed, shop.logDir, () => {});
      const live = await redisState(shop.redis(service));
      const fromLog = await redisState(replayed);
      expect(Object.keys(live).length).toBeGreaterThan(ROUNDS);
      const ignored = new Set([...NOT_REPLAYED, ...Object.keys(live).filter(isLivenessKey)]);
      expect(stateDifferences(live, fromLog, ignored)).toEqual([]);
    } finally {
      replayed.disconnect();
      await fresh.stop();
    }
  });
});
