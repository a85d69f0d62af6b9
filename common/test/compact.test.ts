/**
 * Log compaction against real Redis and real files: what it keeps, what a writer does when the log
 * is rotated under it, and recovery from a snapshot, an interrupted compaction and the live log —
 * also while a compaction runs.
 */
import { beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { Redis } from "ioredis";
import { existsSync, readdirSync, renameSync } from "node:fs";
import { compact } from "../src/compact";
import { keys } from "../src/keyspace";
import { compactingPath, logPath, snapshotPath } from "../src/log";
import { recover } from "../src/recover";
import { parseLog } from "../src/replay";
import { startRedis } from "./support/redis-server";
import { redisState, without } from "./support/redis-state";
import { storeOnItsOwnRedis } from "./support/service";

setDefaultTimeout(60_000);

const ITEMS = 200;
/** Compactions, each under a log write in flight, while the takes go on. */
const ROTATIONS = 5;
const TAKES_PER_ROTATION = 600;
const fixture = storeOnItsOwnRedis("stock");

beforeAll(async () => {
  await fixture.store.writeMany("stock.batch_init", Array.from({ length: ITEMS }, (_, i) => [keys.item(String(i)), { stock: "1000", price: "1" }] as const));
});

/** `n` concurrent takes of one unit from random items: many log lines over few keys. */
async function churn(n: number): Promise<void> {
  await Promise.all(
    Array.from({ length: n }, (_, i) => {
      const key = keys.item(String((i * 7919) % ITEMS));
      return fixture.store.transact("stock.subtract", [key], (s) => ({
        result: null,
        writes: { [key]: { stock: String(Number(s.get(key)!.stock) - 1), price: "1" } },
      }));
    }),
  );
}

/** Replays the logs into an empty Redis and expects exactly the live keys and values. */
async function expectReplayEqualsLive(): Promise<void> {
  const empty = await startRedis();
  const client = new Redis({ port: empty.port });
  try {
    await recover("stock", client, fixture.logDir, () => {});
    expect(without(await redisState(client), keys.seq)).toEqual(without(await redisState(fixture.store.client), keys.seq));
  } finally {
    client.disconnect();
    await empty.stop();
  }
}

const records = async (path: string) => (existsSync(path) ? parseLog(await Bun.file(path).text()).records : []);
const lines = async (path: string) => (await records(path)).length;

test("compaction keeps one line per key, the newest, and recovery from snapshot and log is the live data", async () => {
  await churn(1_000);
  const stats = await compact(fixture.logDir, "stock");
  expect(stats.keys).toBe(ITEMS);
  expect(await lines(snapshotPath(fixture.logDir, "stock"))).toBe(ITEMS);
  expect(existsSync(compactingPath(fixture.logDir, "stock"))).toBe(false);
  await churn(300);
  await expectReplayEqualsLive();
});

/**
 * The store's next durable log write, held before it reaches the file until `release()`, as on a slow
 * disk; `started` gives its text once it has begun. Lines committed meanwhile queue behind it.
 */
function holdNextWrite(): { started: Promise<string>; release: () => void } {
  const log = (fixture.store as unknown as { log: { writeDurably(text: string): Promise<void> } }).log;
  const write = log.writeDurably;
  const started = Promise.withResolvers<string>();
  const released = Promise.withResolvers<void>();
  log.writeDurably = async (text) => {
    log.writeDurably = write;
    started.resolve(text);
    await released.promise;
    return write.call(log, text);
  };
  return { started: started.promise, release: () => released.resolve() };
}

test("lines committed while the log is rotated again and again are all in some file", async () => {
  for (let rotation = 0; rotation < ROTATIONS; rotation++) {
    const write = holdNextWrite();
    const writing = churn(TAKES_PER_ROTATION);
    let held: string;
    try {
      held = await write.started;
      // The whole compaction runs under that write: the log is renamed, folded without its lines, and deleted.
      await compact(fixture.logDir, "stock");
    } finally {
      write.release();
    }
    await writing;
    // The write landed in the deleted file; the writer saw its log gone and wrote the lines again.
    const heldSeqs = parseLog(held).records.map((r) => r.seq);
    const inNewLog = new Set((await records(logPath(fixture.logDir, "stock"))).map((r) => r.seq));
    expect(heldSeqs.length).toBeGreaterThan(0);
    expect(heldSeqs.filter((seq) => !inNewLog.has(seq))).toEqual([]);
  }
  await expectReplayEqualsLive();
});

test("an interrupted compaction's file is read by recovery and finished by the next compaction", async () => {
  await churn(200);
  renameSync(logPath(fixture.logDir, "stock"), compactingPath(fixture.logDir, "stock")); // died right after its rename
  await churn(200);
  await expectReplayEqualsLive();
  await compact(fixture.logDir, "stock");
  expect(existsSync(compactingPath(fixture.logDir, "stock"))).toBe(false);
  await expectReplayEqualsLive();
});

test("recovery while a compaction runs misses no line", async () => {
  await churn(2_000);
  const empty = await startRedis();
  const client = new Redis({ port: empty.port });
  try {
    await Promise.all([recover("stock", client, fixture.logDir, () => {}), compact(fixture.logDir, "stock")]);
    expect(without(await redisState(client), keys.seq)).toEqual(without(await redisState(fixture.store.client), keys.seq));
  } finally {
    client.disconnect();
    await empty.stop();
  }
});

test("a compaction writes a temporary file of its own, and removes those that compactions which died left behind", async () => {
  await churn(50);
  const snapshot = snapshotPath(fixture.logDir, "stock");
  const leftBehind = [`${snapshot}.tmp`, `${snapshot}.999999.tmp`];
  for (const path of leftBehind) await Bun.write(path, "half a snapshot, no newl");
  await compact(fixture.logDir, "stock");
  expect(leftBehind.filter((path) => existsSync(path))).toEqual([]);
  expect(readdirSync(fixture.logDir).filter((name) => name.endsWith(".tmp"))).toEqual([]);
  await expectReplayEqualsLive();
});
