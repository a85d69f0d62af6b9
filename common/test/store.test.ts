/**
 * The optimistic transaction and its durable log, against a real redis-server: nothing lost under
 * contention, inside one process or between two, and every committed change logged exactly once.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { keys } from "@checkout/common/keyspace";
import { formatRecord, logPath, VERSION_FIELD, type LogRecord } from "@checkout/common/log";
import { parseLog } from "@checkout/common/replay";
import { Store } from "@checkout/common/store";
import { startRedis, type RedisServer } from "./support/redis-server";
import { serviceConfig } from "./support/service";

/** Real servers on a shared machine: generous, so that load elsewhere never fails a test by time alone. */
setDefaultTimeout(30_000);

let redis: RedisServer;
let logDir: string;
let store: Store;
let replica: Store;

beforeAll(async () => {
  redis = await startRedis();
  logDir = mkdtempSync(join(tmpdir(), "checkout-store-log-"));
  // Two stores on one Redis and one log, each with its own pool: what two replicas of a service are.
  store = await Store.open(serviceConfig("stock", { redisPort: redis.port, logDir, redisPoolSize: 32 }));
  replica = await Store.open(serviceConfig("stock", { redisPort: redis.port, logDir, redisPoolSize: 32 }));
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

async function untilPendingIsEmpty(): Promise<Record<string, string>> {
  for (let i = 0; i < 100; i++) {
    const pending = await store.client.hgetall(keys.pendingLog);
    if (Object.keys(pending).length === 0) return pending;
    await Bun.sleep(10);
  }
  return store.client.hgetall(keys.pendingLog);
}

/** Each line of `op` holds the value its change wrote; replay by number must be replay in commit order. */
function expectOneLinePerIncrement(op: string, count: number) {
  const lines = linesOf(op).sort((a, b) => a.seq - b.seq);
  expect(lines.length).toBe(count);
  expect(new Set(lines.map((r) => r.seq)).size).toBe(count);
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
    expectOneLinePerIncrement("test.one", 1_000);
    const stored = await store.read("counter:one");
    expect(stored?.[VERSION_FIELD]).toBe(String(Math.max(...linesOf("test.one").map((r) => r.seq))));
  });

  test("500 + 500 concurrent increments from two stores (two replicas) lose nothing and none fails", async () => {
    const from = (on: Store) => Array.from({ length: 500 }, () => increment(on, "counter:two", "test.two"));
    const settled = await Promise.allSettled([...from(store), ...from(replica)]);
    expect(settled.filter((s) => s.status === "rejected")).toEqual([]);
    expect(await store.read("counter:two")).toMatchObject({ n: "1000" });
    expectOneLinePerIncrement("test.two", 1_000);
  });

  test("leaves nothing in log:pending once its callers have their answers", async () => {
    expect(await untilPendingIsEmpty()).toEqual({});
  });

  test("a decision without writes logs nothing", async () => {
    const before = logRecords().length;
    const result = await store.transact("test.read_only", ["counter:one"], (snapshot) => ({ result: snapshot.get("counter:one")?.n }));
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
    expect(await untilPendingIsEmpty()).toEqual({});
  }, 60_000);
});

describe("lines committed but never logged", () => {
  const orphan = (seq: number, agoMs: number) =>
    formatRecord({ seq, at: new Date(Date.now() - agoMs).toISOString(), op: "test.orphan", writes: { [`orphan:${seq}`]: { n: "1" } } });

  test("an old line left in log:pending is appended by appendOrphanedLines, a young one is not", async () => {
    await store.client.hset(keys.pendingLog, { "900001": orphan(900_001, 60_000), "900002": orphan(900_002, 0) });
    expect(await store.appendOrphanedLines()).toBe(1);
    expect(linesOf("test.orphan").map((r) => r.seq)).toEqual([900_001]);
    await Bun.sleep(20);
    expect(await store.client.hkeys(keys.pendingLog)).toEqual(["900002"]);
    await store.client.hdel(keys.pendingLog, "900002");
  });

  test("ensureLogged appends a line still pending", async () => {
    await store.client.hset(keys.pendingLog, "900003", orphan(900_003, 0));
    await store.ensureLogged(900_003);
    expect(linesOf("test.orphan").map((r) => r.seq)).toEqual([900_001, 900_003]);
    expect(await untilPendingIsEmpty()).toEqual({});
  });

  test("ensureLogged of a line no longer pending appends nothing", async () => {
    const before = logRecords().length;
    await store.ensureLogged(900_003);
    await store.ensureLogged(123_456_789);
    expect(logRecords().length).toBe(before);
  });
});
