/**
 * The compaction a service starts by itself: once its log outgrows the bound, a child process folds
 * it, at a lower scheduling priority than the service, and a replay of the files still gives the
 * live state.
 */
import { expect, setDefaultTimeout, test } from "bun:test";
import { Redis } from "ioredis";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { TIMING } from "../src/config";
import { keys } from "../src/keyspace";
import { compactingPath, snapshotPath } from "../src/log";
import { recover } from "../src/recover";
import { eventually } from "./support/eventually";
import { startRedis } from "./support/redis-server";
import { redisState, without } from "./support/redis-state";
import { storeOnItsOwnRedis } from "./support/service";

setDefaultTimeout(60_000);

/** Small enough that a few dozen lines outgrow it (the least the configuration accepts). */
const COMPACT_BYTES = 1024;
const ITEMS = 50;

const fixture = storeOnItsOwnRedis("stock");

/** Niceness of each child process of this one (field 19 of /proc/<pid>/stat), by pid. */
function childNiceness(): Map<number, number> {
  const found = new Map<number, number>();
  for (const task of readdirSync("/proc/self/task")) {
    for (const pid of readFileSync(`/proc/self/task/${task}/children`, "utf8").split(" ").filter(Boolean)) {
      try {
        const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
        found.set(Number(pid), Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[16]));
      } catch {
        // Exited between the two reads.
      }
    }
  }
  return found;
}

test("a log that outgrows its bound is compacted by a child at a lower priority, and replays to the live state", async () => {
  for (let i = 0; i < ITEMS; i++) {
    const key = keys.item(String(i));
    await fixture.store.transact("stock.create", [key], () => ({ result: null, writes: { [key]: { stock: String(i), price: "1" } } }));
  }

  // Children seen while the compaction runs (a child of a tiny log lives for a fraction of a second).
  const seen = new Map<number, number>();
  const watcher = setInterval(() => childNiceness().forEach((nice, pid) => seen.set(pid, nice)), 2);
  fixture.store.startLogUpkeep(fixture.logDir, COMPACT_BYTES, "upkeep-test");
  try {
    expect(await eventually(async () => existsSync(snapshotPath(fixture.logDir, "stock")), TIMING.compactionCheckIntervalMs * 2, 20)).toBe(true);
  } finally {
    clearInterval(watcher);
  }
  // The redis-servers are this test's children too, at the default priority 0.
  expect([...seen.values()]).toContain(10);

  const empty = await startRedis();
  const client = new Redis({ port: empty.port });
  try {
    await recover("stock", client, fixture.logDir, () => {});
    expect(without(await redisState(client), keys.seq)).toEqual(without(await redisState(fixture.store.client), keys.seq, keys.pendingLog, keys.compactionLock));
  } finally {
    client.disconnect();
    await empty.stop();
  }
});

test("a compaction whose lock expired and passed to another process leaves that process's lock in place", async () => {
  const lock = () => fixture.store.client.get(keys.compactionLock);
  for (let i = 0; i < ITEMS; i++) {
    const key = keys.item(`again-${i}`);
    await fixture.store.transact("stock.create", [key], () => ({ result: null, writes: { [key]: { stock: "1", price: "1" } } }));
  }
  // The upkeep started above compacts the grown log; its lock appears while the child runs.
  expect(await eventually(async () => (await lock()) !== null, TIMING.compactionCheckIntervalMs * 2, 1)).toBe(true);
  const another = "another-process:its-own-token";
  await fixture.store.client.set(keys.compactionLock, another);
  try {
    // The compaction has ended once its snapshot holds the new items and its renamed log is gone.
    const ended = async () =>
      !existsSync(compactingPath(fixture.logDir, "stock")) && (await Bun.file(snapshotPath(fixture.logDir, "stock")).text()).includes(keys.item("again-0"));
    expect(await eventually(ended, 30_000, 5)).toBe(true);
    // Then the child exits; give its parent the moment it takes to release the lock.
    await Bun.sleep(500);
    expect(await lock()).toBe(another);
  } finally {
    await fixture.store.client.del(keys.compactionLock);
  }
});
