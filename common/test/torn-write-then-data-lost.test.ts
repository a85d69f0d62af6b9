/**
 * A double fault: the payment log writer dies in the middle of a write (SIGKILL during a write of
 * several pages stops it at a page boundary, leaving a cut line with no newline at the end of the
 * log), the next writer starts, a charge is answered, and then Redis loses its data and is rebuilt
 * from the log. The charge must survive, with its step record, so that the saga sending it again
 * charges nothing more.
 *
 * The torn write itself is written by the test: a real kill lands inside a write only now and then.
 */
import { expect, setDefaultTimeout, test } from "bun:test";
import { appendFileSync } from "node:fs";
import { Redis } from "ioredis";
import { formatRecord, logPath } from "@checkout/common/log";
import { recover } from "@checkout/common/recover";
import { get, post, step } from "./support/http";
import { startRedis } from "./support/redis-server";
import { startService } from "./support/service";
import { scratch } from "./support/scratch";

/** Real servers on a shared machine: generous, so that load elsewhere never fails a test by time alone. */
setDefaultTimeout(60_000);

const STARTING_CREDIT = 100;
const CHARGE = 30;
const OP_ID = "order-7:1.abc";

const { logDir, redises, services } = scratch("checkout-torn-write-");

test("a charge answered after the log writer's torn write survives Redis losing its data, and is not charged twice", async () => {
  const redis = await startRedis({ logFor: { service: "payment", logDir } });
  redises.push(redis);
  const standby = await startService("payment", { redisPort: redis.port, sweeps: false });
  services.push(standby);
  const userId = (await post(`${standby.url}/create_user`)).body.user_id as string;
  expect((await post(`${standby.url}/add_funds/${userId}/${STARTING_CREDIT}`)).status).toBe(200);

  // The writer, killed in the middle of writing a line; the next one starts.
  await redis.holdWriter();
  const cut = formatRecord({
    seq: 999_999,
    at: new Date().toISOString(),
    op: "payment.charge",
    writes: { "user:other": { credit: "5" } },
  });
  appendFileSync(logPath(logDir, "payment"), cut.slice(0, cut.length / 2));
  await redis.resumeWriter();

  expect(await step(standby.url, "charge", OP_ID, { user_id: userId, amount: CHARGE })).toMatchObject({ status: 200 });
  await standby.stop();
  services.pop();

  // Redis loses its data and is rebuilt from the log.
  await redis.stop();
  const rebuilt = await startRedis({ logFor: { service: "payment", logDir } });
  redises.push(rebuilt);
  const client = new Redis({ host: "127.0.0.1", port: rebuilt.port });
  try {
    await recover("payment", client, logDir);
  } finally {
    await client.quit();
  }
  const after = await startService("payment", { redisPort: rebuilt.port, sweeps: false });
  services.push(after);
  expect((await get(`${after.url}/find_user/${userId}`)).body.credit).toBe(STARTING_CREDIT - CHARGE);

  // The saga, not knowing the outcome, sends the charge again: its record answers, nothing more is taken.
  expect(await step(after.url, "charge", OP_ID, { user_id: userId, amount: CHARGE })).toMatchObject({ status: 200 });
  expect((await get(`${after.url}/find_user/${userId}`)).body.credit).toBe(STARTING_CREDIT - CHARGE);
});
