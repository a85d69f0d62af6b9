/**
 * A Redis that dies between a change's commit and the log taking its line, and comes back without
 * its data: the change and its line, one MULTI, are gone together. The store must not answer the
 * change, although the new Redis's writer soon publishes positions of its own: the caller gets
 * "unknown", as when EXEC's reply is lost, and a saga step is sent again.
 *
 * The writer is held by the test until Redis is back: on a healthy disk the log takes a line within a
 * millisecond or two of its commit, and a real crash lands in between only now and then.
 */
import { expect, setDefaultTimeout, test } from "bun:test";
import { readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { keys } from "@checkout/common/keyspace";
import { logPath } from "@checkout/common/log";
import { recover } from "@checkout/common/recover";
import { Redis } from "ioredis";
import { eventually } from "./support/eventually";
import { storeOnItsOwnRedis } from "./support/service";

/** Real servers on a shared machine: generous, so that load elsewhere never fails a test by time alone. */
setDefaultTimeout(60_000);

const fixture = storeOnItsOwnRedis("stock");

test("a change whose Redis died and lost its data before the log took its line is answered 503, and its line is never written", async () => {
  const { store, redis } = fixture;
  await redis.holdWriter();
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
  // Comes back empty, with its writer, which publishes the position of the next change.
  await redis.restart();
  const other = keys.item("after-the-loss");
  expect(await eventually(async () => await store.healthy())).toBe(true);
  await store.transact("stock.add", [other], () => ({
    result: "added",
    writes: { [other]: { stock: "1", price: "1" } },
  }));

  expect(await answer).toEqual({ refused: { status: 503, code: "redis_unavailable" } });
  expect(readFileSync(logPath(fixture.logDir, "stock"), "utf8")).not.toContain(key);
  const client = new Redis({ host: "127.0.0.1", port: redis.port });
  try {
    await recover("stock", client, fixture.logDir, () => {});
    expect(await client.get(key)).toBeNull();
  } finally {
    client.disconnect();
  }
});
