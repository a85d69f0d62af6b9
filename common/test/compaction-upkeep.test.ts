/**
 * The compaction the log writer starts by itself: once its log outgrows the bound, a child process
 * folds it, at a lower scheduling priority than the services, and a replay of the files still gives
 * the live state.
 */
import { afterAll, expect, setDefaultTimeout, test } from "bun:test";
import { Redis } from "ioredis";
import { existsSync, readFileSync } from "node:fs";
import { getPriority } from "node:os";
import { keys } from "../src/keyspace";
import { compactingPath, snapshotPath } from "../src/log";
import { recover } from "../src/recover";
import type { LogWriter } from "../src/log-writer";
import { eventually } from "./support/eventually";
import { startRedis, startWriter } from "./support/redis-server";
import { redisState, without } from "./support/redis-state";
import { storeOnItsOwnRedis } from "./support/service";

setDefaultTimeout(60_000);

/** Small enough that a few dozen lines outgrow it (the least the configuration accepts). */
const COMPACT_BYTES = 1024;
const ITEMS = 50;
/** The scheduling priority the writer gives its compaction child (compaction-upkeep.ts), below the services' 0. */
const COMPACTION_NICENESS = 10;
/** The script the writer's compaction child runs: what tells that spawn from the others. */
const COMPACTION_SCRIPT = "compact.ts";
/** The instance id the test's writers run under (redis-server.ts): their lock tokens begin with it. */
const INSTANCE = "test-writer-stock";

const fixture = storeOnItsOwnRedis("stock");
/** The writer with the small bound; stopped after the file's tests. */
let writer: LogWriter | undefined;
afterAll(async () => {
  await writer?.stop();
});

type HeldChild = { pid: number; resume(): void };

/**
 * The writer's next compaction child, held stopped from its start until `resume()`: a child of a tiny
 * log lives for a fraction of a second, so the test looks at it, or changes things under it, while it
 * cannot have finished. It stops itself (SIGSTOP) before it runs the compaction, and the writer sets its
 * priority right after spawning it, so what the test sees once it is stopped is what the writer did.
 */
function nextCompactionChild(): Promise<HeldChild> {
  const spawn = Bun.spawn;
  const held = Promise.withResolvers<HeldChild>();
  Bun.spawn = ((command: string[], options?: object) => {
    const spawnOptions = options as Parameters<typeof Bun.spawn>[1];
    if (!command.some((arg) => arg.endsWith(COMPACTION_SCRIPT))) return spawn(command, spawnOptions);
    Bun.spawn = spawn;
    const child = spawn(["sh", "-c", 'kill -STOP $$ && exec "$@"', "sh", ...command], spawnOptions);
    eventually(async () => processState(child.pid) === "T").then(
      (stopped) =>
        stopped
          ? held.resolve({ pid: child.pid, resume: () => process.kill(child.pid, "SIGCONT") })
          : held.reject(new Error("the compaction child never stopped")),
      (err: unknown) => held.reject(err),
    );
    return child;
  }) as typeof Bun.spawn;
  return held.promise;
}

/** The state letter of a process (field 3 of /proc/<pid>/stat): "T" once it is stopped. */
function processState(pid: number): string {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[0]!;
}

/** Resolves once the writer's next release of the compaction lock has run (after its child exited). */
function nextLockRelease(writer: LogWriter): Promise<void> {
  const upkeep = (writer as unknown as { upkeep: object }).upkeep;
  const releaser = upkeep as { releaseLock(token: string): Promise<void> };
  const release = releaser.releaseLock;
  const released = Promise.withResolvers<void>();
  releaser.releaseLock = async (token) => {
    releaser.releaseLock = release;
    try {
      await release.call(upkeep, token);
      released.resolve();
    } catch (err) {
      released.reject(err);
      throw err;
    }
  };
  return released.promise;
}

test("a log that outgrows its bound is compacted by a child at a lower priority, and replays to the live state", async () => {
  for (let i = 0; i < ITEMS; i++) {
    const key = keys.item(String(i));
    await fixture.store.transact("stock.create", [key], () => ({
      result: null,
      writes: { [key]: { stock: String(i), price: "1" } },
    }));
  }

  // The service's writer, started again with a bound the log has outgrown: it compacts at once.
  await fixture.redis.holdWriter();
  const spawned = nextCompactionChild();
  writer = await startWriter(fixture.redis.port, {
    service: "stock",
    logDir: fixture.logDir,
    compactBytes: COMPACT_BYTES,
  });
  const released = nextLockRelease(writer);
  const child = await spawned;
  const childNiceness = getPriority(child.pid);
  child.resume();
  // The compaction has ended, its lock released: the next test's compaction is the only one running.
  await released;
  expect(childNiceness).toBe(COMPACTION_NICENESS);
  expect(getPriority()).toBeLessThan(COMPACTION_NICENESS);
  expect(existsSync(snapshotPath(fixture.logDir, "stock"))).toBe(true);

  const empty = await startRedis();
  const client = new Redis({ port: empty.port });
  try {
    await recover("stock", client, fixture.logDir, () => {});
    expect(without(await redisState(client), keys.seq)).toEqual(
      without(await redisState(fixture.store.client), keys.seq, keys.compactionLock),
    );
  } finally {
    client.disconnect();
    await empty.stop();
  }
});

test("a compaction whose lock expired and passed to another process leaves that process's lock in place", async () => {
  const lock = () => fixture.store.client.get(keys.compactionLock);
  const spawned = nextCompactionChild();
  const released = nextLockRelease(writer!);
  for (let i = 0; i < ITEMS; i++) {
    const key = keys.item(`again-${i}`);
    await fixture.store.transact("stock.create", [key], () => ({
      result: null,
      writes: { [key]: { stock: "1", price: "1" } },
    }));
  }
  // The writer started above compacts the grown log. While its child runs, the lock expires and
  // another writer takes it.
  const child = await spawned;
  const holderWhileRunning = await lock();
  const another = "another-process:its-own-token";
  await fixture.store.client.set(keys.compactionLock, another);
  child.resume();
  try {
    await released;
    expect(holderWhileRunning).toStartWith(`${INSTANCE}:`);
    // The compaction ran to its end: its snapshot holds the new items and its renamed log is gone.
    expect(existsSync(compactingPath(fixture.logDir, "stock"))).toBe(false);
    expect(await Bun.file(snapshotPath(fixture.logDir, "stock")).text()).toContain(keys.item("again-0"));
    expect(await lock()).toBe(another);
  } finally {
    await fixture.store.client.del(keys.compactionLock);
  }
});
