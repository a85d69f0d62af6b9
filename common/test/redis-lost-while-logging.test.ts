/**
 * A Redis that dies between a change's commit and its log append, and comes back without its data.
 * Recovery may already have rebuilt it from the log, without the change: the store must neither
 * answer the change nor write its line, which a later rebuild would replay into a Redis that never
 * held it. The caller gets "unknown", as when EXEC's reply is lost, and a saga step is sent again.
 *
 * The append is held by the test until Redis is back: on a healthy disk it follows the commit within
 * a fraction of a millisecond, and a real crash lands in between only now and then.
 */
import { expect, setDefaultTimeout, test } from "bun:test";
import { readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { keys } from "@checkout/common/keyspace";
import { logPath, type LogWriter } from "@checkout/common/log";
import { recover } from "@checkout/common/recover";
import { Redis } from "ioredis";
import { eventually } from "./support/eventually";
import { storeOnItsOwnRedis } from "./support/service";

/** Real servers on a shared machine: generous, so that load elsewhere never fails a test by time alone. */
setDefaultTimeout(60_000);

const fixture = storeOnItsOwnRedis("stock");

test("a change whose Redis died and lost its data before the change was logged is answered 503, and its line is not written", async () => {
  const { store, redis } = fixture;
  const log = (store as unknown as { log: LogWriter }).log;
  const append = log.append.bind(log);
  const released = Promise.withResolvers<void>();
  log.append = async (lines, refusal) => {
    await released.promise;
    return append(lines, refusal);
  };
  try {
    const key = keys.item("lost-while-logging");
    const answer = store
      .transact("stock.add", [key], () => ({ result: "added", writes: { [key]: { stock: "5", price: "1" } } }))
      .then(
        (result) => ({ answered: result }),
        (error) => ({ refused: { status: error.status, code: error.code } }),
      );
    expect(await eventually(async () => (await store.client.get(key)) !== null)).toBe(true);

    await redis.kill();
    rmSync(join(redis.dir, "appendonlydir"), { recursive: true, force: true });
    await redis.restart();
    released.resolve();

    expect(await answer).toEqual({ refused: { status: 503, code: "redis_unavailable" } });

    // Its line was kept out of the log: no later rebuild of Redis from the log brings back a change
    // that this Redis never held.
    expect(readFileSync(logPath(fixture.logDir, "stock"), "utf8")).not.toContain(key);
    const client = new Redis({ host: "127.0.0.1", port: redis.port });
    try {
      await recover("stock", client, fixture.logDir, () => {});
      expect(await client.get(key)).toBeNull();
    } finally {
      client.disconnect();
    }
  } finally {
    released.resolve();
    log.append = append;
  }
});
