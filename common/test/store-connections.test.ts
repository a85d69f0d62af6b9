/**
 * The store's Redis connections, against a real Redis: what a lost connection does to the changes
 * not yet logged.
 */
import { expect, setDefaultTimeout, test } from "bun:test";
import { readFileSync } from "node:fs";
import { Redis } from "ioredis";
import { keys } from "@checkout/common/keyspace";
import { logPath } from "@checkout/common/log";
import { recover } from "@checkout/common/recover";
import { parseLog } from "@checkout/common/replay";
import { eventually } from "./support/eventually";
import { Store } from "@checkout/common/store";
import { startRedis } from "./support/redis-server";
import { serviceConfig, storeOnItsOwnRedis } from "./support/service";

/** Real servers on a shared machine: generous, so that load elsewhere never fails a test by time alone. */
setDefaultTimeout(60_000);

const fixture = storeOnItsOwnRedis("stock");

test("a change built on one whose answer a lost connection made unknown is logged after it", async () => {
  const { store, redis } = fixture;
  const key = keys.item("built-on");
  const subtractOne = (k: string) =>
    store.transact("stock.subtract", [k], (snapshot) => {
      const stock = Number(snapshot.get(k)?.stock ?? 10) - 1;
      return { result: stock, writes: { [k]: { stock: String(stock), price: "1" } } };
    });
  const settled = (p: Promise<number>) =>
    p.then(
      (stock) => ({ stock }),
      (error) => ({ code: error.code as string }),
    );
  expect(await subtractOne(key)).toBe(9);

  // A slow log: the writer is held, and the lines committed meanwhile wait in the stream.
  await redis.holdWriter();
  const admin = new Redis({ host: "127.0.0.1", port: redis.port });
  const holds = async (stock: string) =>
    (await store.client.get(key).catch(() => null))?.includes(`"stock":"${stock}"`) ?? false;
  try {
    // A commits (9 → 8) and waits for the log.
    const a = settled(subtractOne(key));
    expect(await eventually(() => holds("8"))).toBe(true);

    // One connection of the process drops, while Redis keeps its data: A's outcome is now unknown.
    await admin.client("KILL", "ID", String(await store.client.client("ID")));
    expect(await a).toEqual({ code: "redis_unavailable" });
    expect(await eventually(async () => (await store.client.ping().catch(() => "not yet")) === "PONG")).toBe(true);

    // B reads A's effect (8 → 7) and commits; it is answered once the log holds both, in order.
    const b = settled(subtractOne(key));
    expect(await eventually(() => holds("7"))).toBe(true);
    await redis.resumeWriter();
    expect(await b).toEqual({ stock: 7 });
    const logged = parseLog(readFileSync(logPath(fixture.logDir, "stock"), "utf8")).records.filter(
      (r) => key in r.writes,
    );
    expect(logged.map((r) => r.writes[key]!.stock)).toEqual(["9", "8", "7"]);

    // Redis loses its data: the log alone rebuilds it, A included.
    await admin.flushall();
    await recover("stock", admin, fixture.logDir, () => {});
    expect(JSON.parse((await admin.get(key))!).stock).toBe("7");
  } finally {
    await redis.resumeWriter();
    admin.disconnect();
  }
});

test("a process that starts before its Redis is subscribed to the durable position once Redis answers", async () => {
  const redis = await startRedis({ logFor: { service: "stock" } });
  await redis.kill();
  // Its connections, and its first SUBSCRIBE, fail: nothing answers on the port yet.
  const store = Store.connecting(serviceConfig("stock", { redisPort: redis.port }));
  const admin = new Redis({ host: "127.0.0.1", port: redis.port, lazyConnect: true });
  const subscribers = async () => Number(((await admin.pubsub("NUMSUB", keys.durableLog)) as [string, number])[1]);
  try {
    expect(await store.healthy()).toBe(false);
    await redis.restart();
    await store.connected();
    expect(await eventually(async () => (await subscribers()) === 1)).toBe(true);
    // A change is answered once the writer has published it durable.
    await store.writeMany("stock.batch_init", [[keys.item("after-start"), { stock: "1", price: "1" }]]);
  } finally {
    admin.disconnect();
    await store.close();
    await redis.stop();
  }
});
