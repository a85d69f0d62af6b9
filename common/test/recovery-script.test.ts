/**
 * start_redis_with_recovery.sh end to end: a real redis-server killed with SIGKILL, its AOF torn in
 * the middle of a MULTI block or its data folder wiped, then started again through the script.
 * Redis 7 with `aof-load-truncated yes` drops the torn tail back to before the MULTI (checked here:
 * "Truncating the AOF ... at offset N"); the replay of the service log restores what the tail held.
 */
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { Redis } from "ioredis";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, truncateSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { keys, parseStored } from "../src/keyspace";
import { Store } from "../src/store";
import type { ServiceConfig } from "../src/config";
import { eventually } from "./support/eventually";
import { serviceConfig } from "./support/service";

/** Real servers on a shared machine: generous, so that load elsewhere never fails a test by time alone. */
setDefaultTimeout(60_000);

const SCRIPT = resolve(import.meta.dir, "../../start_redis_with_recovery.sh");
/** What the script prints once the replay is done and Redis takes clients: its report is complete. */
const LISTENING = "recovered and listening";
/** Where the AOF is cut, after the last MULTI: inside its block, before the values it writes. */
const TEAR_OFFSET = 40;
const root = mkdtempSync(join(tmpdir(), "recovery-script-"));
const dataDir = join(root, "redis");
const logDir = join(root, "logging");
let port = 0;
let script: Bun.Subprocess<"ignore", "pipe", "pipe"> | undefined;
/** What the script started last printed. */
let recoveryReport = { text: "" };

async function freePort(): Promise<number> {
  const server = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const p = server.port;
  server.stop(true);
  return p;
}

async function startRedis(): Promise<void> {
  const started = Bun.spawn(["bash", SCRIPT, "stock"], {
    env: { ...process.env, REDIS_PORT: String(port), REDIS_DIR: dataDir, LOG_DIR: logDir },
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
  script = started;
  // A report of this script's own: what an earlier one printed never lands in it.
  const report = { text: "" };
  recoveryReport = report;
  void (async () => {
    for await (const chunk of started.stdout) report.text += new TextDecoder().decode(chunk);
  })();
  const client = new Redis({ port, lazyConnect: true, retryStrategy: () => 50, maxRetriesPerRequest: null });
  client.on("error", () => {});
  await client.connect().catch(() => {});
  expect(await client.ping()).toBe("PONG");
  await client.quit();
  expect(await eventually(async () => report.text.includes(LISTENING))).toBe(true);
}

async function killRedis(): Promise<void> {
  const pid = Number(readFileSync(join(dataDir, "redis.pid"), "utf8"));
  process.kill(pid, "SIGKILL");
  await script!.exited;
}

function config(): ServiceConfig {
  return serviceConfig("stock", { redisPort: port, instanceId: "test", redisPoolSize: 4 });
}

/** The file Redis appends its AOF to (Redis 7: `appendonlydir/<name>.<n>.incr.aof`). */
function incrementalAof(): string {
  const aofDir = join(dataDir, "appendonlydir");
  return join(aofDir, readdirSync(aofDir).find((f) => f.endsWith(".incr.aof"))!);
}

/** Whether the AOF file holds the whole MULTI block that stored `value`, its EXEC included. */
function aofHoldsBlockOf(value: string): boolean {
  const text = readFileSync(incrementalAof(), "latin1");
  const at = text.lastIndexOf(value);
  return at >= 0 && text.indexOf("EXEC", at) > at;
}

/** A key's value as Redis stores it: the entity's JSON with its version, unique to the change that wrote it. */
async function rawValue(key: string): Promise<string> {
  const client = new Redis({ port });
  try {
    return (await client.get(key))!;
  } finally {
    await client.quit();
  }
}

async function dump(): Promise<Record<string, Record<string, string> | null>> {
  const client = new Redis({ port });
  const all: Record<string, Record<string, string> | null> = {};
  for (const key of (await client.keys("*")).sort()) {
    // The totals are a hash of numbers, counted anew by every recovery (totals.test.ts).
    if (key === keys.seq || key === keys.logStream || key === keys.durableLog || key === keys.totals) continue;
    all[key] = parseStored(await client.get(key));
  }
  await client.quit();
  return all;
}

/** Three takes of two items each: MULTI blocks in the AOF, lines in the log. */
async function workload(store: Store, prefix: string): Promise<void> {
  await store.writeMany("stock.batch_init", [
    [keys.item(`${prefix}a`), { stock: "10", price: "1" }],
    [keys.item(`${prefix}b`), { stock: "10", price: "1" }],
  ]);
  for (let i = 0; i < 3; i++) {
    await store.transact("stock.take", [keys.item(`${prefix}a`), keys.item(`${prefix}b`)], (s) => ({
      result: null,
      writes: {
        [keys.item(`${prefix}a`)]: { stock: String(Number(s.get(keys.item(`${prefix}a`))!.stock) - 1), price: "1" },
        [keys.item(`${prefix}b`)]: { stock: String(Number(s.get(keys.item(`${prefix}b`))!.stock) - 2), price: "1" },
      },
    }));
  }
}

beforeAll(async () => {
  port = await freePort();
  await startRedis();
});

afterAll(async () => {
  script?.kill("SIGTERM");
  await script?.exited;
  rmSync(root, { recursive: true, force: true });
});

test("an AOF torn inside a MULTI block loads up to the block, and the log replay restores the rest", async () => {
  const store = await Store.open(config());
  await workload(store, "torn-");
  await store.close();
  const before = await dump();
  expect(before["item:torn-b"]).toMatchObject({ stock: "4" });
  // appendfsync everysec: Redis may keep a block in its buffer a while (behind an fsync) before it
  // writes it to the file. The last take's block must be in the file before the kill, to be torn.
  const lastTake = await rawValue(keys.item("torn-b"));
  expect(await eventually(async () => aofHoldsBlockOf(lastTake))).toBe(true);
  await killRedis();

  const incr = incrementalAof();
  const text = readFileSync(incr, "latin1");
  const lastMulti = text.lastIndexOf("MULTI");
  expect(lastMulti).toBeGreaterThan(0);
  // The cut falls inside the last take's block: after its MULTI, before its writes and its EXEC.
  expect(text.indexOf(lastTake, lastMulti)).toBeGreaterThan(lastMulti + TEAR_OFFSET);
  truncateSync(incr, lastMulti + TEAR_OFFSET);
  expect(statSync(incr).size).toBe(lastMulti + TEAR_OFFSET);

  await startRedis();
  expect(await dump()).toEqual(before);
  // Redis itself lost the torn take of both items; the replay put them back.
  expect(recoveryReport.text).toMatch(/\b2 applied\b/);
});

test("a Redis whose data folder is wiped is rebuilt entirely from the log", async () => {
  const store = await Store.open(config());
  await workload(store, "wiped-");
  await store.close();
  const before = await dump();
  await killRedis();
  rmSync(dataDir, { recursive: true, force: true });

  await startRedis();
  expect(await dump()).toEqual(before);
});
