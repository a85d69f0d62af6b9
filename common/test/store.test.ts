/**
 * The optimistic transaction and its durable log, against a real redis-server: nothing lost under
 * contention, inside one process or between two, and every committed change logged exactly once.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { keys, storedValue } from "@checkout/common/keyspace";
import { formatRecord, logPath, VERSION_FIELD, type LogRecord } from "@checkout/common/log";
import { parseLog } from "@checkout/common/replay";
import { Store } from "@checkout/common/store";
import { eventually } from "./support/eventually";
import { committedNotLogged } from "./support/unlogged";
import { startRedis, type RedisServer } from "./support/redis-server";
import { serviceConfig } from "./support/service";

/** Real servers on a shared machine: generous, so that load elsewhere never fails a test by time alone. */
setDefaultTimeout(60_000);

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

/** `log:pending` once its entries are gone (each leaves a moment after its line is durable), or what stays of it. */
async function untilPendingIsEmpty(): Promise<Record<string, string>> {
  await eventually(async () => (await store.client.hlen(keys.pendingLog)) === 0);
  return store.client.hgetall(keys.pendingLog);
}

/**
 * Each increment of `op` has its line, holding the value its change wrote; replay by number must be
 * replay in commit order. `duplicates`: a line may also appear again, whole (see the two-store test).
 */
function expectEveryIncrementLogged(op: string, count: number, duplicates = false) {
  const lines = linesOf(op).sort((a, b) => a.seq - b.seq);
  const bySeq = new Map(lines.map((r) => [r.seq, r]));
  expect(bySeq.size).toBe(count);
  if (!duplicates) expect(lines.length).toBe(count);
  for (const line of lines) expect(line).toEqual(bySeq.get(line.seq)!);
  const values = [...bySeq.values()].map((r) => Number(Object.values(r.writes)[0]!.n));
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
    // Each store reads the other's increments before they are logged, and logs them ahead of its own.
    expectEveryIncrementLogged("test.two", 1_000, true);
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
  const orphan = (seq: number, agoMs: number, now = Date.now()) =>
    formatRecord({ seq, at: new Date(now - agoMs).toISOString(), op: "test.orphan", writes: { [`orphan:${seq}`]: { n: "1" } } });

  test("an old line left in log:pending is appended by appendOrphanedLines, a young one is not", async () => {
    // Ages as of one moment, the sweep's "now": however long the test takes to get there.
    const now = Date.now();
    await store.client.hset(keys.pendingLog, { "900001": orphan(900_001, 60_000, now), "900002": orphan(900_002, 0, now) });
    expect(await store.appendOrphanedLines(now)).toBe(1);
    expect(linesOf("test.orphan").map((r) => r.seq)).toEqual([900_001]);
    // The appended line's entry is dropped soon after (alone, when no batch carries the HDEL).
    expect(await eventually(async () => (await store.client.hlen(keys.pendingLog)) === 1)).toBe(true);
    expect(await store.client.hkeys(keys.pendingLog)).toEqual(["900002"]);
    await store.client.hdel(keys.pendingLog, "900002");
  });

  test("ensureLogged appends a line still pending", async () => {
    await store.client.hset(keys.pendingLog, "900003", orphan(900_003, 0));
    await store.ensureLogged(900_003);
    expect(linesOf("test.orphan").map((r) => r.seq)).toEqual([900_001, 900_003]);
    expect(await untilPendingIsEmpty()).toEqual({});
  });

  test("ensureLogged appends the pending lines numbered before it first", async () => {
    await store.client.hset(keys.pendingLog, { "900004": orphan(900_004, 0), "900005": orphan(900_005, 0), "900006": orphan(900_006, 0) });
    await store.ensureLogged(900_005);
    expect(linesOf("test.orphan").map((r) => r.seq)).toEqual([900_001, 900_003, 900_004, 900_005]);
    expect(await eventually(async () => (await store.client.hlen(keys.pendingLog)) === 1)).toBe(true);
    expect(await store.client.hkeys(keys.pendingLog)).toEqual(["900006"]);
    await store.client.hdel(keys.pendingLog, "900006");
  });

  test("ensureLogged of a line no longer pending appends nothing", async () => {
    const before = logRecords().length;
    await store.ensureLogged(900_003);
    await store.ensureLogged(123_456_789);
    expect(logRecords().length).toBe(before);
  });
});

describe("a change that read another process's unlogged change", () => {
  const leftByADeadProcess = (seq: number, key: string, n: number) => committedNotLogged(store.client, key, { n: String(n) }, "test.unlogged", seq);
  const appendedSince = (count: number) => logRecords().slice(count).map((r) => [r.op, r.seq]);

  test("logs that change, and every pending line numbered before it, ahead of its own line", async () => {
    // Numbers taken as the dead process took them, so the change below is numbered after them.
    const last = await store.client.incrby(keys.seq, 30);
    const [earlier, read, later] = [last - 25, last - 20, last - 10];
    await leftByADeadProcess(earlier, "unlogged:earlier", 1);
    await leftByADeadProcess(read, "unlogged:read", 7);
    await leftByADeadProcess(later, "unlogged:later", 1);
    const before = logRecords().length;
    expect(await increment(store, "unlogged:read", "test.after_unlogged")).toBe(8);
    const own = linesOf("test.after_unlogged").at(-1)!;
    expect(appendedSince(before)).toEqual([
      ["test.unlogged", earlier],
      ["test.unlogged", read],
      ["test.after_unlogged", own.seq],
    ]);
    // The lines it logged leave log:pending; the later one, which it did not read, stays for its owner.
    expect(await eventually(async () => (await store.client.hlen(keys.pendingLog)) === 1)).toBe(true);
    expect(await store.client.hkeys(keys.pendingLog)).toEqual([String(later)]);
    await store.client.hdel(keys.pendingLog, String(later));
  });

  test("a change whose line is already logged is not logged again", async () => {
    await store.client.set("logged:read", storedValue(JSON.stringify({ n: "3" }), await store.client.incr(keys.seq)));
    const before = logRecords().length;
    await increment(store, "logged:read", "test.after_logged");
    expect(appendedSince(before)).toEqual([["test.after_logged", linesOf("test.after_logged").at(-1)!.seq]]);
  });

  test("this store's own pending changes are not looked up: one line per change", async () => {
    const before = logRecords().length;
    await Promise.all(Array.from({ length: 200 }, () => increment(store, "own:read", "test.own")));
    expect(logRecords().length - before).toBe(200);
    expectEveryIncrementLogged("test.own", 200);
  });
});

