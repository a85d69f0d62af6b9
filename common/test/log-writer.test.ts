/**
 * The log writer against a real Redis and real files: it appends the stream in order, starts where
 * the durable position says, begins on a new line after a torn tail, and, killed at each of its crash
 * points (a real process, SIGKILLed there), leaves every line in the log once the next writer ran.
 */
import { afterAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { appendFileSync, existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { Redis } from "ioredis";
import { REPO_ROOT } from "@checkout/common/config";
import { markerPath } from "@checkout/common/faults";
import { keys } from "@checkout/common/keyspace";
import { formatRecord, logPath } from "@checkout/common/log";
import { parseLog } from "@checkout/common/replay";
import { eventually } from "./support/eventually";
import { startRedis, startWriter, type RedisServer } from "./support/redis-server";
import { scratch } from "./support/scratch";

setDefaultTimeout(60_000);

const { logDir, redises } = scratch("checkout-log-writer-");
const clients: Redis[] = [];
afterAll(() => {
  for (const c of clients) c.disconnect();
});

async function redisWithClient(): Promise<{ server: RedisServer; client: Redis }> {
  const server = await startRedis();
  redises.push(server);
  const client = new Redis({ host: "127.0.0.1", port: server.port });
  client.on("error", () => {});
  clients.push(client);
  return { server, client };
}

const line = (seq: number) =>
  formatRecord({
    seq,
    at: new Date().toISOString(),
    op: "stock.add",
    writes: { [`item:${seq}`]: { stock: String(seq), price: "1" } },
  });
const commit = (client: Redis, seq: number) => client.xadd(keys.logStream, "*", "lines", line(seq));
const loggedSeqs = (service: "stock" | "payment" | "order", dir = logDir) =>
  existsSync(logPath(dir, service))
    ? parseLog(readFileSync(logPath(dir, service), "utf8")).records.map((r) => r.seq)
    : [];

describe("the log writer", () => {
  test("appends the stream in order, publishes how far the log is durable, and trims what it wrote", async () => {
    const { server, client } = await redisWithClient();
    const subscriber = new Redis({ host: "127.0.0.1", port: server.port });
    subscriber.on("error", () => {});
    clients.push(subscriber);
    const published: string[] = [];
    subscriber.on("message", (_channel, id) => published.push(id));
    await subscriber.subscribe(keys.durableLog);
    const writer = await startWriter(server.port, { service: "payment", logDir });
    try {
      const ids: Array<string | null> = [];
      for (let seq = 1; seq <= 5; seq++) ids.push(await commit(client, seq));
      expect(await eventually(async () => published.includes(ids.at(-1)!))).toBe(true);
      expect(loggedSeqs("payment")).toEqual([1, 2, 3, 4, 5]);
      expect(await client.get(keys.durableLog)).toBe(ids.at(-1)!);
      expect(await eventually(async () => (await client.xlen(keys.logStream)) === 0)).toBe(true);
    } finally {
      await writer.stop();
    }
  });

  test("starts after the durable position its Redis holds, and on a new line after a torn tail", async () => {
    const { server, client } = await redisWithClient();
    const written = (await commit(client, 1))!;
    await commit(client, 2);
    await client.set(keys.durableLog, written);
    // The line of 1 is in the log already; a writer killed in the middle of a write left half a line.
    appendFileSync(logPath(logDir, "order"), line(1) + line(99).slice(0, 30));
    const writer = await startWriter(server.port, { service: "order", logDir });
    try {
      expect(await eventually(async () => loggedSeqs("order").includes(2))).toBe(true);
      expect(loggedSeqs("order")).toEqual([1, 2]);
      expect(parseLog(readFileSync(logPath(logDir, "order"), "utf8")).skipped).toBe(1);
    } finally {
      await writer.stop();
    }
  });
});

describe("a log writer killed at a crash point", () => {
  const INSTANCE = "writer-stock";
  const spawnWriter = (redisPort: number, dir: string, faultPoint?: string) => {
    const child = Bun.spawn(["bun", join(REPO_ROOT, "common/src/log-writer.ts"), "stock"], {
      env: {
        ...process.env,
        REDIS_PORT: String(redisPort),
        LOG_DIR: dir,
        FAULT_DIR: dir,
        ...(faultPoint ? { FAULT_POINT: faultPoint } : {}),
      },
      stdout: "ignore",
      stderr: "ignore",
    });
    return child;
  };

  for (const point of [
    "writer.before_append",
    "writer.appended_not_synced",
    "writer.synced_not_published",
    "writer.published_not_trimmed",
  ]) {
    test(`at ${point}: the next writer leaves every line in the log, the position published and the stream trimmed`, async () => {
      const { server, client } = await redisWithClient();
      const dir = join(server.dir, "logging");
      const ids: Array<string | null> = [];
      for (let seq = 1; seq <= 3; seq++) ids.push(await commit(client, seq));
      const armed = spawnWriter(server.port, dir, point);
      await armed.exited;
      expect(armed.signalCode).toBe("SIGKILL");
      expect(existsSync(markerPath(dir, point, INSTANCE))).toBe(true);
      for (let seq = 4; seq <= 5; seq++) ids.push(await commit(client, seq));

      const next = spawnWriter(server.port, dir);
      try {
        expect(await eventually(async () => (await client.get(keys.durableLog)) === ids.at(-1))).toBe(true);
        expect(await eventually(async () => (await client.xlen(keys.logStream)) === 0)).toBe(true);
        // Every line, in commit order; a line written twice (killed before publishing) is harmless.
        expect([...new Set(loggedSeqs("stock", dir))]).toEqual([1, 2, 3, 4, 5]);
      } finally {
        next.kill("SIGKILL");
        await next.exited;
      }
    });
  }
});
