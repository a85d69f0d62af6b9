/**
 * Log compaction against real Redis and real files: what it keeps, the log writer rotating the log
 * under a stream of changes, and recovery from a snapshot, an interrupted compaction and the live
 * log — also while a compaction runs. A compaction by hand runs while the writer is stopped, as the
 * docs/operations.md says to do it; the writer's own runs while it appends.
 */
import { beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { Redis } from "ioredis";
import { existsSync, readdirSync, renameSync } from "node:fs";
import { compact } from "../src/compact";
import { keys } from "../src/keyspace";
import { compactingPath, logPath, snapshotPath } from "../src/log";
import { recover } from "../src/recover";
import { parseLog } from "../src/replay";
import { startRedis, startWriter } from "./support/redis-server";
import { redisState, without } from "./support/redis-state";
import { storeOnItsOwnRedis } from "./support/service";

setDefaultTimeout(60_000);

const ITEMS = 200;
/** Rounds of takes while the writer compacts its log whenever it outgrows a small bound. */
const ROUNDS = 5;
const TAKES_PER_ROUND = 600;
/** Small enough that the log outgrows it a few times per round. */
const SMALL_COMPACT_BYTES = 16 * 1024;
const fixture = storeOnItsOwnRedis("stock");

beforeAll(async () => {
  await fixture.store.writeMany(
    "stock.batch_init",
    Array.from({ length: ITEMS }, (_, i) => [keys.item(String(i)), { stock: "1000", price: "1" }] as const),
  );
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
    expect(without(await redisState(client), keys.seq)).toEqual(
      without(await redisState(fixture.store.client), keys.seq),
    );
  } finally {
    client.disconnect();
    await empty.stop();
  }
}

const records = async (path: string) => (existsSync(path) ? parseLog(await Bun.file(path).text()).records : []);
const lines = async (path: string) => (await records(path)).length;

/** A compaction by hand, its writer stopped meanwhile (as docs/operations.md says). */
async function compactByHand(): Promise<Awaited<ReturnType<typeof compact>>> {
  await fixture.redis.holdWriter();
  try {
    return await compact(fixture.logDir, "stock");
  } finally {
    await fixture.redis.resumeWriter();
  }
}

test("compaction keeps one line per key, the newest, and recovery from snapshot and log is the live data", async () => {
  await churn(1_000);
  const stats = await compactByHand();
  expect(stats.keys).toBe(ITEMS);
  expect(await lines(snapshotPath(fixture.logDir, "stock"))).toBe(ITEMS);
  expect(existsSync(compactingPath(fixture.logDir, "stock"))).toBe(false);
  await churn(300);
  await expectReplayEqualsLive();
});

test("lines committed while the writer rotates its log again and again are all in some file", async () => {
  await fixture.redis.holdWriter();
  const writer = await startWriter(fixture.redis.port, {
    service: "stock",
    logDir: fixture.logDir,
    compactBytes: SMALL_COMPACT_BYTES,
  });
  const rotations = countRotations(writer);
  try {
    for (let round = 0; round < ROUNDS; round++) {
      await churn(TAKES_PER_ROUND);
      // The compaction the round started ends (one runs at a time): the next round's lines outgrow the bound again.
      await (writer as unknown as { upkeep: { idle(): Promise<void> } }).upkeep.idle();
    }
  } finally {
    await writer.stop();
    await fixture.redis.resumeWriter();
  }
  expect(rotations()).toBeGreaterThanOrEqual(ROUNDS);
  await expectReplayEqualsLive();
});

/** Counts the writer's rotations of its log (each starts a compaction). */
function countRotations(writer: object): () => number {
  const rotating = writer as { reopen(): void };
  const reopen = rotating.reopen;
  let count = 0;
  rotating.reopen = function (this: unknown) {
    count++;
    reopen.call(this);
  };
  return () => count;
}

test("an interrupted compaction's file is read by recovery and finished by the next compaction", async () => {
  await churn(200);
  // A writer that died right after its rename: the next one starts a new log.
  await fixture.redis.holdWriter();
  renameSync(logPath(fixture.logDir, "stock"), compactingPath(fixture.logDir, "stock"));
  await fixture.redis.resumeWriter();
  await churn(200);
  await expectReplayEqualsLive();
  await compactByHand();
  expect(existsSync(compactingPath(fixture.logDir, "stock"))).toBe(false);
  await expectReplayEqualsLive();
});

test("recovery while a compaction runs misses no line", async () => {
  await churn(2_000);
  const empty = await startRedis();
  const client = new Redis({ port: empty.port });
  try {
    await Promise.all([recover("stock", client, fixture.logDir, () => {}), compactByHand()]);
    expect(without(await redisState(client), keys.seq)).toEqual(
      without(await redisState(fixture.store.client), keys.seq),
    );
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
  await compactByHand();
  expect(leftBehind.filter((path) => existsSync(path))).toEqual([]);
  expect(readdirSync(fixture.logDir).filter((name) => name.endsWith(".tmp"))).toEqual([]);
  await expectReplayEqualsLive();
});
