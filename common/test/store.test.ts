/**
 * The optimistic transaction and its durable log, against a real redis-server and its log writer:
 * nothing lost under contention, inside one process or between two, every committed change logged
 * exactly once, in commit order.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { keys, storedValue } from "@checkout/common/keyspace";
import { logPath, VERSION_FIELD, type LogRecord } from "@checkout/common/log";
import { parseLog } from "@checkout/common/replay";
import { Store } from "@checkout/common/store";
import { eventually } from "./support/eventually";
import { committedNotLogged, waitingForTheLog } from "./support/unlogged";
import { startRedis, type RedisServer } from "./support/redis-server";
import { serviceConfig } from "./support/service";

/** Real servers on a shared machine: generous, so that load elsewhere never fails a test by time alone. */
setDefaultTimeout(60_000);

let redis: RedisServer;
let logDir: string;
let store: Store;
let replica: Store;

beforeAll(async () => {
  logDir = mkdtempSync(join(tmpdir(), "checkout-store-log-"));
  redis = await startRedis({ logFor: { service: "stock", logDir } });
  // Two stores on one Redis and its log, each with its own pool: what two replicas of a service are.
  store = await Store.open(serviceConfig("stock", { redisPort: redis.port, redisPoolSize: 32 }));
  replica = await Store.open(serviceConfig("stock", { redisPort: redis.port, redisPoolSize: 32 }));
});

afterAll(async () => {
  await store?.close();
  await replica?.close();
  await redis?.stop();
  rmSync(logDir, { recursive: true, force: true });
});

const logRecords = (): LogRecord[] => parseLog(readFileSync(logPath(logDir, "stock"), "utf8")).records;
const linesOf = (op: string) => logRecords().filter((r) => r.op === op);

function increment(on: Store, key: string, op: string): Promise<number> {
  return on.transact(op, [key], (snapshot) => {
    const next = Number(snapshot.get(key)?.n ?? 0) + 1;
    return { result: next, writes: { [key]: { n: String(next) } } };
  });
}

/** The log stream once the writer has trimmed it empty (a moment after each line is durable), or its length then. */
async function untilStreamIsEmpty(): Promise<number> {
  await eventually(async () => (await store.client.xlen(keys.logStream)) === 0);
  return store.client.xlen(keys.logStream);
}

/**
 * Each increment of `op` has exactly one line, holding the value its change wrote, and the lines are
 * in the log in commit order: by number, and by place in the file.
 */
function expectEveryIncrementLogged(op: string, count: number) {
  const lines = linesOf(op);
  expect(lines.length).toBe(count);
  expect(lines.map((r) => r.seq)).toEqual(lines.map((r) => r.seq).sort((a, b) => a - b));
  const values = lines.map((r) => Number(Object.values(r.writes)[0]!.n));
  expect(values).toEqual(Array.from({ length: count }, (_, i) => i + 1));
}

describe("transact", () => {
  test("1000 concurrent increments of one key from one store lose nothing", async () => {
    const results = await Promise.all(Array.from({ length: 1_000 }, () => increment(store, "counter:one", "test.one")));
    expect(new Set(results).size).toBe(1_000);
    expect(await store.read("counter:one")).toMatchObject({ n: "1000" });
  });

  test("every committed increment has exactly one log line, numbered in commit order", async () => {
    expectEveryIncrementLogged("test.one", 1_000);
    const stored = await store.read("counter:one");
    expect(stored?.[VERSION_FIELD]).toBe(String(Math.max(...linesOf("test.one").map((r) => r.seq))));
  });

  test("500 + 500 concurrent increments from two stores (two replicas) lose nothing and none fails", async () => {
    const from = (on: Store) => Array.from({ length: 500 }, () => increment(on, "counter:two", "test.two"));
    const settled = await Promise.allSettled([...from(store), ...from(replica)]);
    expect(settled.filter((s) => s.status === "rejected")).toEqual([]);
    expect(await store.read("counter:two")).toMatchObject({ n: "1000" });
    // Each store reads the other's increments before they are logged: the writer logs them in commit order.
    expectEveryIncrementLogged("test.two", 1_000);
  });

  test("leaves nothing in the log stream once its callers have their answers", async () => {
    expect(await untilStreamIsEmpty()).toBe(0);
  });

  test("a decision without writes logs nothing", async () => {
    const before = logRecords().length;
    const result = await store.transact("test.read_only", ["counter:one"], (snapshot) => ({
      result: snapshot.get("counter:one")?.n,
    }));
    expect(result).toBe("1000");
    expect(logRecords().length).toBe(before);
  });
});

describe("writeMany", () => {
  test("writes 100 000 keys and logs 100 000 lines", async () => {
    const entries = Array.from({ length: 100_000 }, (_, i) => [`bulk:${i}`, { stock: "1000000", price: "1" }] as const);
    const started = performance.now();
    await store.writeMany("test.bulk", entries);
    const ms = Math.round(performance.now() - started);
    console.log(`[store.test] writeMany of 100 000 keys took ${ms} ms`);

    const lines = linesOf("test.bulk");
    expect(lines.length).toBe(100_000);
    expect(new Set(lines.map((r) => r.seq)).size).toBe(100_000);
    expect(await store.read("bulk:0")).toMatchObject({ stock: "1000000", price: "1" });
    expect(await store.read("bulk:99999")).toMatchObject({ stock: "1000000", price: "1" });
    expect(await store.client.dbsize()).toBeGreaterThanOrEqual(100_000);
    expect(await untilStreamIsEmpty()).toBe(0);
  }, 60_000);
});

describe("a change whose process died before its answer", () => {
  const leftByADeadProcess = (key: string, n: number) =>
    committedNotLogged(store.client, key, { n: String(n) }, "test.unlogged");
  const appendedSince = (count: number) =>
    logRecords()
      .slice(count)
      .map((r) => [r.op, r.seq]);

  test("is logged by the writer all the same", async () => {
    const seq = await leftByADeadProcess("unlogged:alone", 1);
    expect(await eventually(async () => logRecords().some((r) => r.seq === seq))).toBe(true);
  });

  test("is in the log before a change that read it, which is answered only once both are durable", async () => {
    await redis.holdWriter();
    const before = logRecords().length;
    const read = await leftByADeadProcess("unlogged:read", 7);
    const answer = increment(store, "unlogged:read", "test.after_unlogged");
    expect(await eventually(async () => waitingForTheLog(store) > 0)).toBe(true);
    expect(appendedSince(before)).toEqual([]);
    await redis.resumeWriter();
    expect(await answer).toBe(8);
    const own = linesOf("test.after_unlogged").at(-1)!;
    expect(appendedSince(before)).toEqual([
      ["test.unlogged", read],
      ["test.after_unlogged", own.seq],
    ]);
  });

  test("a change already logged is not logged again: one line per change", async () => {
    await store.client.set("logged:read", storedValue(JSON.stringify({ n: "3" }), await store.client.incr(keys.seq)));
    const before = logRecords().length;
    await increment(store, "logged:read", "test.after_logged");
    expect(appendedSince(before)).toEqual([["test.after_logged", linesOf("test.after_logged").at(-1)!.seq]]);
    await Promise.all(Array.from({ length: 200 }, () => increment(store, "own:read", "test.own")));
    expectEveryIncrementLogged("test.own", 200);
  });
});
