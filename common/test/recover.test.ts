/**
 * Recovery of a service's Redis from its log: a mixed workload runs through a real stock service,
 * then its log is replayed into other real redis-servers (empty, behind, up to date) and every key
 * must come out exactly as the live Redis holds it.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { appendFileSync, copyFileSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import { keys, parseStored } from "@checkout/common/keyspace";
import { formatRecord, logPath } from "@checkout/common/log";
import { recover } from "@checkout/common/recover";
import { parseLog } from "@checkout/common/replay";
import { Store } from "@checkout/common/store";
import { itemCodec } from "../../stock/src/stock";
import { eventually } from "./support/eventually";
import { get, post, step } from "./support/http";
import { startRedis, type RedisServer } from "./support/redis-server";
import { redisState, type RedisState } from "./support/redis-state";
import { serviceConfig, startService, type RunningService } from "./support/service";

/** Real servers on a shared machine: generous, so that load elsewhere never fails a test by time alone. */
setDefaultTimeout(60_000);

/** A recovery still running after this long is stuck: it takes about a second, a few on a loaded machine. */
const RECOVERY_DEADLINE_MS = 30_000;
/** Recoveries in one test, at most. */
const RECOVERIES_PER_TEST = 2;
/** Per-test limit: its recoveries, each up to the deadline above, and the requests around them. */
const TEST_TIMEOUT_MS = RECOVERIES_PER_TEST * RECOVERY_DEADLINE_MS + 30_000;
/** Keys that legitimately differ between a live Redis and its replay. */
const NOT_REPLAYED = new Set<string>([keys.seq, keys.logStream, keys.durableLog]);

const servers: RedisServer[] = [];
const clients: Redis[] = [];
const dirs: string[] = [];
let live: RedisServer;
let liveClient: Redis;
let stock: RunningService;
let logDir: string;

/** A Redis, and with `logDir` the stock service's log writer beside it. */
async function redisServer(logDir?: string): Promise<{ server: RedisServer; client: Redis }> {
  const server = await startRedis(logDir ? { logFor: { service: "stock", logDir } } : {});
  servers.push(server);
  const client = new Redis({
    port: server.port,
    host: "127.0.0.1",
    maxRetriesPerRequest: 1,
    enableOfflineQueue: false,
    retryStrategy: () => null,
  });
  client.on("error", () => {});
  clients.push(client);
  await new Promise((resolve) => client.once("ready", resolve));
  return { server, client };
}

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "checkout-recover-"));
  dirs.push(dir);
  return dir;
}

const withoutBookkeeping = (s: RedisState): RedisState =>
  Object.fromEntries(Object.entries(s).filter(([key]) => !NOT_REPLAYED.has(key)));

/** recover(), bounded: a recovery that never ends fails the test instead of hanging it. */
async function recoverWithin(redis: Redis, dir: string): Promise<void> {
  const said: string[] = [];
  let timer: ReturnType<typeof setTimeout> | undefined;
  const stuck = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`recover() did not finish within ${RECOVERY_DEADLINE_MS} ms`)),
      RECOVERY_DEADLINE_MS,
    );
  });
  try {
    await Promise.race([recover("stock", redis, dir, (line) => said.push(line)), stuck]);
  } finally {
    clearTimeout(timer);
  }
}

/** Waits until the live Redis's log stream is empty: every line committed so far is in the log, and trimmed. */
async function untilNothingPending(): Promise<void> {
  expect(await eventually(async () => (await liveClient.xlen(keys.logStream)) === 0)).toBe(true);
}

const stockUrl = (path: string) => `${stock.url}${path}`;

async function workload(tag: string): Promise<void> {
  const created: string[] = [];
  for (const price of [1, 5, 9]) created.push((await post(stockUrl(`/item/create/${price}`))).body.item_id);
  const [a, b, c] = created as [string, string, string];
  expect((await post(stockUrl(`/add/${a}/10`))).status).toBe(200);
  expect((await post(stockUrl(`/add/${b}/3`))).status).toBe(200);
  expect((await post(stockUrl(`/subtract/${a}/4`))).status).toBe(200);
  expect((await post(stockUrl(`/subtract/${b}/4`))).status).toBe(409);
  expect(
    (
      await step(stock.url, "take", `${tag}-ok:1`, {
        items: [
          [a, 2],
          [b, 1],
        ],
      })
    ).status,
  ).toBe(200);
  expect(
    (
      await step(stock.url, "take", `${tag}-short:1`, {
        items: [
          [a, 1],
          [c, 1],
        ],
      })
    ).status,
  ).toBe(409);
  expect((await step(stock.url, "take", `${tag}-unknown:1`, { items: [["no-such-item", 1]] })).status).toBe(404);
  expect((await step(stock.url, "take", `${tag}-undone:1`, { items: [[a, 1]] })).status).toBe(200);
  expect((await step(stock.url, "restore", `${tag}-undone:1`, { items: [[a, 1]] })).status).toBe(200);
  expect((await step(stock.url, "restore", `${tag}-never:1`, { items: [[b, 1]] })).status).toBe(200);
  await Promise.all(Array.from({ length: 20 }, () => post(stockUrl(`/add/${c}/1`))));
}

beforeAll(async () => {
  logDir = tempDir();
  ({ server: live, client: liveClient } = await redisServer(logDir));
  stock = await startService("stock", { redisPort: live.port });
  expect((await post(stockUrl("/batch_init/50/100/2"))).status).toBe(200);
  await workload("w1");
  await untilNothingPending();
});

afterAll(async () => {
  await stock?.stop();
  for (const client of clients) client.disconnect();
  for (const server of servers) await server.stop();
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

describe("recover", () => {
  test(
    "into an empty Redis rebuilds every key of the live one",
    async () => {
      const { client } = await redisServer();
      await recoverWithin(client, logDir);
      const liveState = await redisState(liveClient);
      // 50 batch items, 3 created items, 5 operation records, meta:seq and meta:totals.
      expect(Object.keys(liveState).length).toBe(60);
      expect(withoutBookkeeping(await redisState(client))).toEqual(withoutBookkeeping(liveState));
    },
    TEST_TIMEOUT_MS,
  );

  test(
    "leaves the sequence counter at the newest number in the log: the next change is numbered above every line",
    async () => {
      const { client } = await redisServer();
      await recoverWithin(client, logDir);
      const { records } = parseLog(readFileSync(logPath(logDir, "stock"), "utf8"));
      expect(Number(await client.get(keys.seq))).toBe(Math.max(...records.map((r) => r.seq)));
    },
    TEST_TIMEOUT_MS,
  );

  test(
    "into a Redis that is behind brings it up to date, and replaying again changes nothing",
    async () => {
      const { client: behind } = await redisServer();
      // A copy of the live Redis as it is now...
      for (const [key] of Object.entries(await redisState(liveClient))) {
        if (NOT_REPLAYED.has(key)) continue;
        const dumped = await liveClient.dumpBuffer(key);
        if (dumped) await behind.restore(key, 0, dumped, "REPLACE");
      }
      // ...then the live one moves on.
      await workload("w2");
      const item = (await get(stockUrl("/find/7"))).body;
      expect((await post(stockUrl("/subtract/7/1"))).body).toEqual({ item_id: "7", stock: item.stock - 1 });
      await untilNothingPending();
      expect(withoutBookkeeping(await redisState(behind))).not.toEqual(
        withoutBookkeeping(await redisState(liveClient)),
      );

      await recoverWithin(behind, logDir);
      const recovered = await redisState(behind);
      expect(withoutBookkeeping(recovered)).toEqual(withoutBookkeeping(await redisState(liveClient)));

      // Again: nothing changes, the sequence counter included.
      const seqBefore = Number(await behind.get(keys.seq));
      await recoverWithin(behind, logDir);
      expect(withoutBookkeeping(await redisState(behind))).toEqual(withoutBookkeeping(recovered));
      expect(Number(await behind.get(keys.seq))).toBe(seqBefore);
    },
    TEST_TIMEOUT_MS,
  );

  test(
    "of a log whose last line is torn replays everything before it",
    async () => {
      await untilNothingPending();
      const expected = withoutBookkeeping(await redisState(liveClient));
      const tornDir = tempDir();
      copyFileSync(logPath(logDir, "stock"), logPath(tornDir, "stock"));
      const next = formatRecord({
        seq: 10_000_000,
        at: new Date().toISOString(),
        op: "stock.add",
        writes: { "item:0": { stock: "999", price: "2" } },
      });
      appendFileSync(logPath(tornDir, "stock"), next.slice(0, next.length - 5));

      const { client } = await redisServer();
      await recoverWithin(client, tornDir);
      expect(withoutBookkeeping(await redisState(client))).toEqual(expected);
    },
    TEST_TIMEOUT_MS,
  );

  test(
    "a change logged after a torn tail (a crash mid-append) is replayed too",
    async () => {
      const tornDir = tempDir();
      copyFileSync(logPath(logDir, "stock"), logPath(tornDir, "stock"));
      const lost = formatRecord({
        seq: 10_000_000,
        at: new Date().toISOString(),
        op: "stock.add",
        writes: { "item:0": { stock: "999", price: "2" } },
      });
      appendFileSync(logPath(tornDir, "stock"), lost.slice(0, 40));

      // The restarted writer appends the next change to the same log.
      const { server: scratch, client: scratchClient } = await redisServer(tornDir);
      await scratchClient.set(keys.seq, "20000000");
      const restarted = await Store.open(serviceConfig("stock", { redisPort: scratch.port }));
      await restarted.change("stock.create", "item:after-crash", itemCodec, () => ({ stock: 0, price: 3 }));
      await restarted.close();

      const { records } = parseLog(readFileSync(logPath(tornDir, "stock"), "utf8"));
      expect(records.filter((r) => "item:after-crash" in r.writes).length).toBe(1);
      const { client } = await redisServer();
      await recoverWithin(client, tornDir);
      expect(parseStored(await client.get("item:after-crash"))).toMatchObject({ stock: "0", price: "3" });
    },
    TEST_TIMEOUT_MS,
  );
});
