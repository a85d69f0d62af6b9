/**
 * Saga step records expire (common/src/retention.ts), and steps still apply at most once: real
 * services on real Redises, a retention of seconds.
 *
 * One paid checkout runs through the order service; beside it the test drives a second saga by hand,
 * whose compensation cannot apply yet (the stock it would restore has no room), as a saga keeps
 * sending one. Once the paid checkout's records have expired: its steps and compensations, sent again,
 * are refused and change no balance; the compensating saga's record is still there; a Redis rebuilt
 * from the log, or from a compacted snapshot, holds the one and not the other; and the compensation
 * finally applies once.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { readFileSync } from "node:fs";
import { Redis } from "ioredis";
import { compact } from "@checkout/common/compact";
import { MAX_INTEGER } from "@checkout/common/limits";
import { keys, parseStored } from "@checkout/common/keyspace";
import { snapshotPath } from "@checkout/common/log";
import { recover } from "@checkout/common/recover";
import { EXPIRES_FIELD, operationId, type StepRetention } from "@checkout/common/retention";
import { eventually } from "./support/eventually";
import { get, post, step } from "./support/http";
import { startRedis, type RedisServer } from "./support/redis-server";
import { scratch } from "./support/scratch";
import { startService, type RunningService } from "./support/service";

setDefaultTimeout(120_000);

/**
 * Ten seconds: the compensating saga below renews its record every RENEW_EVERY_MS, so the machine
 * would have to stall for most of this before the test could fail by time.
 */
const RETENTION: StepRetention = { retentionMs: 10_000, maxClockSkewMs: 500 };
const RENEW_EVERY_MS = 1_000;
/** Expiry waits out the retention, whatever the load. */
const EXPIRY_WAIT_MS = RETENTION.retentionMs + 60_000;

const PRICE = 2;
const CREDIT = 100;
const STOCK = 10;

const redises: Partial<Record<"order" | "stock" | "payment", RedisServer>> = {};
const clients: Redis[] = [];
let stock: RunningService;
let payment: RunningService;
let order: RunningService;

function client(port: number): Redis {
  const redis = new Redis({ port, host: "127.0.0.1", maxRetriesPerRequest: 1 });
  redis.on("error", () => {});
  clients.push(redis);
  return redis;
}

/** The paid checkout: its ids and its attempt's operation id, as the order service made it. */
const paid = { item: "", user: "", order: "", opId: "" };
/** The saga the test drives: it took one unit, and its compensation waits for room. */
const compensating = { item: "", opId: "", stockBefore: 0 };
let renewing: Promise<void> | undefined;
let stopRenewing = false;

const stockOf = async (item: string) => (await get(`${stock.url}/find/${item}`)).body.stock as number;
const creditOf = async (user: string) => (await get(`${payment.url}/find_user/${user}`)).body.credit as number;
const restore = (opId: string, item: string) => step(stock.url, "restore", opId, { items: [[item, 1]] });

/** The services' log folder, written by the log writer beside each Redis (removed after the file's tests). */
const { logDir } = scratch("checkout-retention-");

beforeAll(async () => {
  for (const service of ["order", "stock", "payment"] as const)
    redises[service] = await startRedis({ logFor: { service, logDir } });
  stock = await startService("stock", { redisPort: redises.stock!.port, retention: RETENTION });
  payment = await startService("payment", { redisPort: redises.payment!.port, retention: RETENTION });
  order = await startService("order", {
    redisPort: redises.order!.port,
    stockUrls: [stock.url],
    paymentUrls: [payment.url],
  });

  paid.item = (await post(`${stock.url}/item/create/${PRICE}`)).body.item_id;
  await post(`${stock.url}/add/${paid.item}/${STOCK}`);
  paid.user = (await post(`${payment.url}/create_user`)).body.user_id;
  await post(`${payment.url}/add_funds/${paid.user}/${CREDIT}`);
  paid.order = (await post(`${order.url}/create/${paid.user}`)).body.order_id;
  await post(`${order.url}/addItem/${paid.order}/${paid.item}/1`);
  expect((await post(`${order.url}/checkout/${paid.order}`)).status).toBe(200);
  paid.opId = JSON.parse(parseStored(await client(redises.order!.port).get(keys.order(paid.order)))!.saga!).opId;

  compensating.item = (await post(`${stock.url}/item/create/${PRICE}`)).body.item_id;
  await post(`${stock.url}/add/${compensating.item}/1`);
  compensating.opId = operationId("by-hand", 1, "n", Date.now());
  expect((await step(stock.url, "take", compensating.opId, { items: [[compensating.item, 1]] })).status).toBe(200);
  // No room left to put the unit back: the compensation is refused until there is.
  await post(`${stock.url}/add/${compensating.item}/${MAX_INTEGER}`);
  compensating.stockBefore = MAX_INTEGER;
  // As a saga sends a compensation until it applies.
  renewing = (async () => {
    while (!stopRenewing) {
      const answer = await restore(compensating.opId, compensating.item);
      expect(answer.status).toBe(400);
      await Bun.sleep(RENEW_EVERY_MS);
    }
  })();
});

afterAll(async () => {
  stopRenewing = true;
  await renewing;
  for (const service of [order, stock, payment]) await service?.stop();
  for (const redis of clients) redis.disconnect();
  for (const redis of Object.values(redises)) await redis?.stop();
});

describe("saga step records expire", () => {
  test("a paid checkout's step records carry their expiry, and are gone from Redis once it passes", async () => {
    const opKey = keys.operation(paid.opId);
    for (const port of [redises.stock!.port, redises.payment!.port]) {
      const record = parseStored(await client(port).get(opKey));
      expect(Number(record?.[EXPIRES_FIELD])).toBeGreaterThan(Date.now());
      expect(await client(port).pttl(opKey)).toBeGreaterThan(0);
    }
    const gone = async () =>
      (await client(redises.stock!.port).exists(opKey)) + (await client(redises.payment!.port).exists(opKey)) === 0;
    expect(await eventually(gone, EXPIRY_WAIT_MS, 100)).toBe(true);
  });

  test("a step, a repeated step and a compensation delivered after their record expired are each refused, and the books balance", async () => {
    const items = { items: [[paid.item, 1]] };
    const charge = { user_id: paid.user, amount: PRICE };
    const expired = { status: 409, body: { error: "operation_expired", message: expect.any(String) } };
    expect(await step(stock.url, "take", paid.opId, items)).toEqual(expired);
    expect(await step(stock.url, "take", paid.opId, items)).toEqual(expired);
    expect(await step(stock.url, "restore", paid.opId, items)).toEqual(expired);
    expect(await step(payment.url, "charge", paid.opId, charge)).toEqual(expired);
    expect(await step(payment.url, "charge", paid.opId, charge)).toEqual(expired);
    expect(await step(payment.url, "refund", paid.opId, charge)).toEqual(expired);
    // Nothing was written for them either.
    expect(await client(redises.stock!.port).exists(keys.operation(paid.opId))).toBe(0);
    expect(await stockOf(paid.item)).toBe(STOCK - 1);
    expect(await creditOf(paid.user)).toBe(CREDIT - PRICE);
    expect((await get(`${order.url}/find/${paid.order}`)).body.paid).toBe(true);
  });

  test("a saga still compensating when its record would have expired keeps it", async () => {
    const record = parseStored(await client(redises.stock!.port).get(keys.operation(compensating.opId)));
    expect(record?.state).toBe("applied");
    expect(await client(redises.stock!.port).pttl(keys.operation(compensating.opId))).toBeGreaterThan(0);
  });

  test("a Redis rebuilt from the log, or from a compacted snapshot, does not bring expired records back", async () => {
    for (const source of ["log", "snapshot"] as const) {
      if (source === "snapshot") {
        // By hand, a compaction needs the log writer held (the writer compacts on its own otherwise).
        await redises.stock!.holdWriter();
        await compact(logDir, "stock");
        await redises.stock!.resumeWriter();
        const snapshot = readFileSync(snapshotPath(logDir, "stock"), "utf8");
        expect(snapshot).not.toContain(keys.operation(paid.opId));
        expect(snapshot).toContain(keys.operation(compensating.opId));
      }
      const fresh = await startRedis();
      try {
        const rebuilt = client(fresh.port);
        await recover("stock", rebuilt, logDir, () => {});
        expect({ source, paid: await rebuilt.exists(keys.operation(paid.opId)) }).toEqual({ source, paid: 0 });
        expect(parseStored(await rebuilt.get(keys.operation(compensating.opId)))?.state).toBe("applied");
        // It still expires, as the log line says.
        expect(await rebuilt.pttl(keys.operation(compensating.opId))).toBeGreaterThan(0);
        expect(parseStored(await rebuilt.get(keys.item(paid.item)))?.stock).toBe(String(STOCK - 1));
      } finally {
        await fresh.stop();
      }
    }
  });

  test("the compensation that waited applies once there is room, exactly once", async () => {
    stopRenewing = true;
    await renewing;
    await post(`${stock.url}/subtract/${compensating.item}/10`);
    expect(await restore(compensating.opId, compensating.item)).toEqual({
      status: 200,
      body: { outcome: "compensated" },
    });
    expect(await restore(compensating.opId, compensating.item)).toEqual({
      status: 200,
      body: { outcome: "compensated" },
    });
    expect(await stockOf(compensating.item)).toBe(compensating.stockBefore - 10 + 1);
  });
});
