/**
 * A Redis that dies between a change's commit and the end of its log append, and comes back without
 * its data. Recovery may already have rebuilt it from a log the change's line had not reached, so the
 * change may be missing from Redis: the store must not answer it. The caller gets "unknown", as when
 * EXEC's reply is lost, and a saga step is then sent again.
 *
 * The append is held by the test until Redis is back: on a healthy disk it takes a fraction of a
 * millisecond, and a real crash lands inside it only now and then.
 */
import { expect, setDefaultTimeout, test } from "bun:test";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { keys } from "@checkout/common/keyspace";
import type { LogWriter } from "@checkout/common/log";
import { eventually } from "./support/eventually";
import { storeOnItsOwnRedis } from "./support/service";

/** Real servers on a shared machine: generous, so that load elsewhere never fails a test by time alone. */
setDefaultTimeout(30_000);

const fixture = storeOnItsOwnRedis("stock");

test("a change whose Redis died and lost its data before the change's log line was durable is answered 503, not done", async () => {
  const { store, redis } = fixture;
  const log = (store as unknown as { log: LogWriter }).log;
  const append = log.append.bind(log);
  const released = Promise.withResolvers<void>();
  log.append = async (lines) => {
    await released.promise;
    return append(lines);
  };
  try {
    const key = keys.item("lost-while-logging");
    const answer = store
      .transact("stock.add", [key], () => ({ result: "added", writes: { [key]: { stock: "5", price: "1" } } }))
      .then(
        (result) => ({ answered: result }),
        (error) => ({ refused: { status: error.status, code: error.code } }),
      );
    expect(await eventually(async () => (await store.client.get(key)) !== null, 5_000)).toBe(true);

    await redis.kill();
    rmSync(join(redis.dir, "appendonlydir"), { recursive: true, force: true });
    await redis.restart();
    released.resolve();

    expect(await answer).toEqual({ refused: { status: 503, code: "redis_unavailable" } });
  } finally {
    released.resolve();
    log.append = append;
  }
});
