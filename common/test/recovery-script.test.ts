/**
 * start_redis_with_recovery.sh end to end: a real redis-server killed with SIGKILL, its AOF torn in
 * the middle of a MULTI block or its data folder wiped, then started again through the script.
 * Redis 7 with `aof-load-truncated yes` drops the torn tail back to before the MULTI (checked here:
 * "Truncating the AOF ... at offset N"); the replay of the service log restores what the tail held.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { Redis } from "ioredis";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, truncateSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { keys, parseStored } from "../src/keyspace";
import { Store } from "../src/store";
import type { ServiceConfig } from "../src/config";

const SCRIPT = resolve(import.meta.dir, "../../start_redis_with_recovery.sh");
const root = mkdtempSync(join(tmpdir(), "recovery-script-"));
const dataDir = join(root, "redis");
const logDir = join(root, "logging");
let port = 0;
let script: Bun.Subprocess<"ignore", "pipe", "pipe"> | undefined;
let recoveryReport = "";

async function freePort(): Promise<number> {
  const server = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const p = server.port;
  server.stop(true);
  return p;
}

async function startRedis(): Promise<void> {
  script = Bun.spawn(["bash", SCRIPT, "stock"], {
    env: { ...process.env, REDIS_PORT: String(port), REDIS_DIR: dataDir, LOG_DIR: logDir },
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
  recoveryReport = "";
  void (async () => {
    for await (const chunk of script.stdout) recoveryReport += new TextDecoder().decode(chunk);
  })();
  const client = new Redis({ port, lazyConnect: true, retryStrategy: () => 50, maxRetriesPerRequest: null });
  client.on("error", () => {});
  await client.connect().catch(() => {});
  expect(await client.ping()).toBe("PONG");
  await client.quit();
}

async function killRedis(): Promise<void> {
  const pid = Number(readFileSync(join(dataDir, "redis.pid"), "utf8"));
  process.kill(pid, "SIGKILL");
  await script!.exited;
}

function config(): ServiceConfig {
  return {
    service: "stock",
    port: 0,
    redis: { host: "127.0.0.1", port },
    logDir,
    stockUrls: [],
    paymentUrls: [],
    instanceId: "test",
    redisPoolSize: 4,
    logCompactBytes: 64 * 1024 * 1024,
    faultPoint: undefined,
  };
}

async function dump(): Promise<Record<string, Record<string, string> | null>> {
  const client = new Redis({ port });
  const all: Record<string, Record<string, string> | null> = {};
  for (const key of (await client.keys("*")).sort()) {
    if (key === keys.seq || key === keys.pendingLog) continue;
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
  // everysec: give Redis its fsync second, so the AOF holds every block before we tear it.
  await Bun.sleep(1_200);
  await killRedis();

  const aofDir = join(dataDir, "appendonlydir");
  const incr = join(aofDir, readdirSync(aofDir).find((f) => f.endsWith(".incr.aof"))!);
  const text = readFileSync(incr, "latin1");
  const lastMulti = text.lastIndexOf("MULTI");
  expect(lastMulti).toBeGreaterThan(0);
  truncateSync(incr, lastMulti + 40); // inside the block: after MULTI, before EXEC
  expect(statSync(incr).size).toBe(lastMulti + 40);

  await startRedis();
  expect(await dump()).toEqual(before);
  // Redis itself lost the torn take of both items; the replay put them back.
  expect(recoveryReport).toMatch(/\b2 applied\b/);
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
