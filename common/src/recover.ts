/**
 * Recovery of one service's Redis from its log, run by start_redis_with_recovery.sh while Redis is
 * reachable only through a private Unix socket (REDIS_SOCKET):
 *  1. lines committed to Redis but never logged (`log:pending`, if the data survived) are appended;
 *  2. the log, an interrupted compaction's file and the snapshot are replayed: every key takes its
 *     newest logged state where Redis holds an older one;
 *  3. the log is read again until it stops growing for RECOVERY_SETTLE_MS, so that a line a service
 *     appended just after the crash (its EXEC answered, its fsync not yet done) is not missed;
 *  4. the sequence number jumps by SEQ_GAP_AFTER_RECOVERY;
 *  5. the conservation meter's totals are counted anew from the entities (totals.ts).
 * A service does not log a change whose Redis it saw die after the commit (Store.logDurably). One whose
 * write had begun just before would still land a line numbered by the lost Redis, possibly above every
 * logged number: below the jump, it shares no number with a newer change.
 */
import { Redis } from "ioredis";
import { stat } from "node:fs/promises";
import { REPO_ROOT, SERVICES, type ServiceName } from "./config";
import { keys } from "./keyspace";
import { compactingPath, logPath, LogWriter, snapshotPath } from "./log";
import { applyLatest, foldLatest, parseLog, type LatestState } from "./replay";
import { rebuildTotals } from "./totals";
import { resolve } from "node:path";

/** Quiet time of the log after which recovery trusts it has seen every line written before the crash. */
const RECOVERY_SETTLE_MS = 300;
/**
 * Numbers a Redis may have handed out beyond the newest logged one when it died: its unsaved last
 * second (appendfsync everysec) and the batches in flight, at most some ten thousand on this kind of
 * machine. A hundred times that costs nothing (numbers go up to 2^53).
 */
export const SEQ_GAP_AFTER_RECOVERY = 1_000_000;

export async function recover(service: ServiceName, redis: Redis, logDir: string, say = console.log): Promise<void> {
  const started = performance.now();
  const path = logPath(logDir, service);
  const log = await LogWriter.open(path);
  const pending = await redis.hgetall(keys.pendingLog);
  const orphans = Object.values(pending);
  if (orphans.length > 0) await log.append(orphans.join(""));
  await log.close();
  await redis.del(keys.pendingLog);

  // Nothing but the pending entries just appended and dropped: the data is gone, replay all of it.
  const empty = (await redis.dbsize()) === 0;
  const latest = new Map<string, LatestState>();
  let records = 0;
  let skipped = 0;
  const read = (text: string) => {
    const parsed = parseLog(text);
    records += parsed.records.length;
    skipped += parsed.skipped;
    return parsed;
  };

  // The live log first, then an interrupted compaction's file, then the snapshot: in that order a
  // compaction running meanwhile (compact.ts renames the log, writes the snapshot, deletes the
  // renamed log) can never hide a line — each of its steps moves lines only to a file read later.
  let live = await readFrom(path, undefined, 0);
  const first = read(live.text);
  foldLatest(first.records, latest);
  let offset = Buffer.byteLength(live.text.slice(0, first.consumed));
  for (const older of [compactingPath(logDir, service), snapshotPath(logDir, service)]) {
    foldLatest(read(await textIfPresent(older)).records, latest);
  }
  let applied = (await applyLatest(redis, service, latest, empty)).keysApplied;

  // Then the log again until it stops growing: a line a service appended just after the crash.
  for (;;) {
    await Bun.sleep(RECOVERY_SETTLE_MS);
    const before = live;
    live = await readFrom(path, before.inode, offset);
    if (live.inode === before.inode && live.size === before.size) break;
    if (live.inode !== before.inode) offset = 0;
    const parsed = read(live.text);
    offset += Buffer.byteLength(live.text.slice(0, parsed.consumed));
    const fresh = foldLatest(parsed.records);
    foldLatest(parsed.records, latest);
    applied += (await applyLatest(redis, service, fresh)).keysApplied;
  }
  await redis.incrby(keys.seq, SEQ_GAP_AFTER_RECOVERY);
  await rebuildTotals(redis, service);
  const ms = Math.round(performance.now() - started);
  say(
    `[recover] ${service}: ${records} log lines, ${latest.size} keys, ${applied} applied` +
      `${orphans.length ? `, ${orphans.length} unlogged lines appended` : ""}${skipped ? `, ${skipped} torn lines skipped` : ""} in ${ms} ms`,
  );
}

/**
 * A file's text, or none if there is no such file: a compaction that ends while recovery runs deletes
 * its renamed log, whose lines are then in the snapshot, read after it.
 */
async function textIfPresent(path: string): Promise<string> {
  try {
    return await Bun.file(path).text();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return "";
    throw err;
  }
}

/**
 * The log's text from `offset` (from the start if the file at `path` is no longer the one `inode`
 * named: a compaction rotated it), with the identity and size of the file read.
 */
async function readFrom(path: string, inode: number | undefined, offset: number): Promise<{ text: string; inode: number; size: number }> {
  let info;
  try {
    info = await stat(path);
  } catch {
    return { text: "", inode: -1, size: 0 };
  }
  const from = inode === undefined || info.ino === inode ? offset : 0;
  return { text: await Bun.file(path).slice(from, info.size).text(), inode: info.ino, size: info.size };
}

if (import.meta.main) {
  const service = process.argv[2] as ServiceName;
  if (!SERVICES.includes(service)) {
    console.error(`usage: recover.ts <${SERVICES.join("|")}>`);
    process.exit(2);
  }
  const socket = process.env.REDIS_SOCKET;
  const redis = socket ? new Redis({ path: socket }) : new Redis({ port: Number(process.env.REDIS_PORT ?? 6379) });
  await recover(service, redis, process.env.LOG_DIR ?? resolve(REPO_ROOT, "logging"));
  await redis.quit();
}
