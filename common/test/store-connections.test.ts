/**
 * The store's Redis connections, against a real Redis: what a lost connection does to the changes
 * not yet logged, and what a pooled connection carries from one use to the next.
 */
import { expect, setDefaultTimeout, test } from "bun:test";
import { readFileSync } from "node:fs";
import { Redis } from "ioredis";
import { keys } from "@checkout/common/keyspace";
import { logPath } from "@checkout/common/log";
import { recover } from "@checkout/common/recover";
import { parseLog } from "@checkout/common/replay";
import { eventually } from "./support/eventually";
import { storeOnItsOwnRedis } from "./support/service";

/** Real servers on a shared machine: generous, so that load elsewhere never fails a test by time alone. */
setDefaultTimeout(60_000);

const fixture = storeOnItsOwnRedis("stock");

test("a change built on one of ours that a lost connection kept out of the log carries its line", async () => {
  const { store, redis } = fixture;
  const key = keys.item("built-on");
  const other = keys.item("elsewhere");
  const subtractOne = (k: string) =>
    store.transact("stock.subtract", [k], (snapshot) => {
      const stock = Number(snapshot.get(k)?.stock ?? 10) - 1;
      return { result: stock, writes: { [k]: { stock: String(stock), price: "1" } } };
    });
  const settled = (p: Promise<number>) => p.then((stock) => ({ stock }), (error) => ({ code: error.code as string }));
  expect(await subtractOne(key)).toBe(9);

  // A slow disk (the log file, not Redis): the next write is held until the test lets it go, and
  // the lines committed meanwhile wait behind it.
  const log = (store as unknown as { log: { writeDurably(text: string): Promise<void> } }).log;
  const write = log.writeDurably.bind(log);
  const writing = Promise.withResolvers<void>();
  const held = Promise.withResolvers<void>();
  log.writeDurably = async (text) => {
    writing.resolve();
    await held.promise;
    return write(text);
  };
  const admin = new Redis({ host: "127.0.0.1", port: redis.port });
  const holds = async (stock: string) => (await store.client.get(key).catch(() => null))?.includes(`"stock":"${stock}"`) ?? false;
  try {
    const first = settled(subtractOne(other));
    await writing.promise;
    // A commits (9 → 8) and waits behind the held write.
    const a = settled(subtractOne(key));
    expect(await eventually(() => holds("8"))).toBe(true);

    // One connection of the process drops, while Redis keeps its data.
    await admin.client("KILL", "ID", String(await store.client.client("ID")));
    expect(await eventually(async () => (await store.client.ping().catch(() => "not yet")) === "PONG")).toBe(true);

    // B reads A's effect (8 → 7) and commits; it must not reach the log without A's line.
    const b = settled(subtractOne(key));
    expect(await eventually(() => holds("7"))).toBe(true);
    held.resolve();
    expect(await b).toEqual({ stock: 7 });
    expect(await a).toEqual({ code: "redis_unavailable" });
    await first;
    const logged = parseLog(readFileSync(logPath(fixture.logDir, "stock"), "utf8")).records.filter((r) => key in r.writes);
    expect(logged.map((r) => r.writes[key]!.stock)).toEqual(["9", "8", "7"]);

    // Redis loses its data before any sweep: the log alone rebuilds it, A included.
    await admin.flushall();
    await recover("stock", admin, fixture.logDir, () => {});
    expect(JSON.parse((await admin.get(key))!).stock).toBe("7");
  } finally {
    held.resolve();
    log.writeDurably = write;
    admin.disconnect();
  }
});

test("the compaction lock is released after a transaction left its pooled connection watching a key that changed", async () => {
  const { store } = fixture;
  const key = keys.item("read-only");
  await store.client.set(key, JSON.stringify({ stock: "1", price: "1", v: "1" }));
  // A read-only transaction: its batch ends with the key still watched on its connection.
  expect(await store.transact("stock.read", [key], (snapshot) => ({ result: snapshot.get(key)?.stock }))).toBe("1");
  await store.client.set(key, JSON.stringify({ stock: "2", price: "1", v: "2" }));

  await store.client.set(keys.compactionLock, "this-compaction");
  await (store as unknown as { releaseCompactionLock(token: string): Promise<void> }).releaseCompactionLock("this-compaction");
  expect(await store.client.get(keys.compactionLock)).toBeNull();
});
