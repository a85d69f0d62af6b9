/**
 * A double fault, with real processes: a stock process is killed between a step's EXEC and its
 * answer; the standby takes the same item; then Redis loses its data and is rebuilt from the log, and
 * the saga sends the killed step again. The item must have lost exactly one unit per step: the
 * standby's line holds the first step's effect, so the first step's line must be in the log before it.
 */
import { expect, setDefaultTimeout, test } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { Redis } from "ioredis";
import { REPO_ROOT } from "@checkout/common/config";
import { markerPath } from "@checkout/common/faults";
import { logPath } from "@checkout/common/log";
import { recover } from "@checkout/common/recover";
import { eventually } from "./support/eventually";
import { get, post, step, TEST_INTERNAL_SECRET } from "./support/http";
import { freePort, startRedis } from "./support/redis-server";
import { startService } from "./support/service";
import { scratch } from "./support/scratch";

/** Real servers on a shared machine: generous, so that load elsewhere never fails a test by time alone. */
setDefaultTimeout(60_000);

const STARTING_STOCK = 10;
const INSTANCE = "stock-killed";
const FAULT = "stock.take.committed_not_logged";

const { logDir, redises, services } = scratch("checkout-unlogged-");

/** The real stock service (stock/src/main.ts) as its own process, armed to die at FAULT. */
async function startArmedStock(redisPort: number): Promise<{ url: string; exited: Promise<number | null> }> {
  const port = await freePort();
  const child = Bun.spawn(["bun", join(REPO_ROOT, "stock/src/main.ts")], {
    env: {
      ...process.env,
      PORT: String(port),
      REDIS_PORT: String(redisPort),
      FAULT_DIR: logDir,
      INSTANCE_ID: INSTANCE,
      FAULT_POINT: FAULT,
      INTERNAL_SECRET: TEST_INTERNAL_SECRET,
    },
    stdout: "ignore",
    stderr: "ignore",
  });
  const url = `http://127.0.0.1:${port}`;
  const up = await eventually(
    async () => (await get(`${url}/health`).catch(() => ({ status: 0 }))).status === 200,
    15_000,
    50,
  );
  if (!up) child.kill("SIGKILL");
  expect(up).toBe(true);
  return { url, exited: child.exited };
}

test("a step killed before its log line, built on by the standby, then Redis losing its data: the item loses one unit per step", async () => {
  const redis = await startRedis({ logFor: { service: "stock", logDir } });
  redises.push(redis);
  const killed = await startArmedStock(redis.port);
  const created = await post(`${killed.url}/item/create/1`);
  const item = created.body.item_id as string;
  expect((await post(`${killed.url}/add/${item}/${STARTING_STOCK}`)).status).toBe(200);

  // Step 1 commits in Redis, and the process dies before its log line.
  const first = await step(killed.url, "take", "first:1", { items: [[item, 1]] }).catch((err: unknown) => String(err));
  expect(typeof first).toBe("string");
  await killed.exited;
  expect(existsSync(markerPath(logDir, FAULT, INSTANCE))).toBe(true);

  // The standby takes the same item.
  const standby = await startService("stock", { redisPort: redis.port });
  services.push(standby);
  expect(await step(standby.url, "take", "second:1", { items: [[item, 1]] })).toMatchObject({ status: 200 });
  await standby.stop();
  services.pop();

  // Redis loses its data; a fresh one is rebuilt from the log.
  await redis.stop();
  const rebuilt = await startRedis({ logFor: { service: "stock", logDir } });
  redises.push(rebuilt);
  const client = new Redis({ port: rebuilt.port, host: "127.0.0.1" });
  await recover("stock", client, logDir, () => {});
  await client.quit();

  // The saga did not learn step 1's outcome, so it sends it again.
  const restarted = await startService("stock", { redisPort: rebuilt.port });
  services.push(restarted);
  expect(await step(restarted.url, "take", "first:1", { items: [[item, 1]] })).toMatchObject({ status: 200 });
  expect((await get(`${restarted.url}/find/${item}`)).body).toMatchObject({ stock: STARTING_STOCK - 2 });

  const lines = readFileSync(logPath(logDir, "stock"), "utf8").split("\n");
  const firstLine = lines.findIndex((line) => line.includes('"op:first:1"'));
  const secondLine = lines.findIndex((line) => line.includes('"op:second:1"'));
  expect(firstLine).toBeGreaterThanOrEqual(0);
  expect(firstLine).toBeLessThan(secondLine);
});
