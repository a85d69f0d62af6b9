/**
 * Recovery of one service's Redis from its log, run by start_redis_with_recovery.sh while Redis is
 * reachable only through a private Unix socket (REDIS_SOCKET):
 *  1. lines committed to Redis but never logged (`log:pending`, if the data survived) are appended;
 *  2. the snapshot and the log are replayed: every key takes its newest logged state where Redis
 *     holds an older one;
 *  3. the log is read again until it stops growing for RECOVERY_SETTLE_MS, so that a line a service
 *     appended just after the crash (its EXEC answered, its fsync not yet done) is not missed.
 */
import { Redis } from "ioredis";
import { existsSync } from "node:fs";
import { stat } from "node:fs/promises";
import { REPO_ROOT, SERVICES, type ServiceName } from "./config";
import { keys } from "./keyspace";
import { logFiles, logPath, LogWriter } from "./log";
import { applyLatest, foldLatest, parseLog, type LatestState } from "./replay";
import { resolve } from "node:path";

/** Quiet time of the log after which recovery trusts it has seen every line written before the crash. */
const RECOVERY_SETTLE_MS = 300;

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
  let empty = (await redis.dbsize()) === 0;
  const latest = new Map<string, LatestState>();
  let records = 0;
  let applied = 0;
  let skipped = 0;
  // The snapshot and an interrupted compaction's file first (they do not grow), then the live log.
  for (const older of logFiles(logDir, service).filter((f) => f !== path)) {
    if (!existsSync(older)) continue;
    const parsed = parseLog(await Bun.file(older).text());
    records += parsed.records.length;
    skipped += parsed.skipped;
    foldLatest(parsed.records, latest);
  }
  const fromOlder = await applyLatest(redis, service, latest, empty);
  applied += fromOlder.keysApplied;
  if (fromOlder.keysApplied > 0) empty = false;
  let offset = 0;
  let sizeBefore = -1;
  for (;;) {
    const size = await fileSize(path);
    // Settled: the log did not grow while we waited (a torn last line stays unread, and stays torn).
    if (size === sizeBefore) break;
    sizeBefore = size;
    const text = await Bun.file(path).slice(offset, size).text();
    const parsed = parseLog(text);
    offset += Buffer.byteLength(text.slice(0, parsed.consumed));
    records += parsed.records.length;
    skipped += parsed.skipped;
    const fresh = foldLatest(parsed.records);
    foldLatest(parsed.records, latest);
    const pass = await applyLatest(redis, service, fresh, empty);
    applied += pass.keysApplied;
    if (pass.keysApplied > 0) empty = false;
    await Bun.sleep(RECOVERY_SETTLE_MS);
  }
  const ms = Math.round(performance.now() - started);
  say(
    `[recover] ${service}: ${records} log lines, ${latest.size} keys, ${applied} applied` +
      `${orphans.length ? `, ${orphans.length} unlogged lines appended` : ""}${skipped ? `, ${skipped} torn lines skipped` : ""} in ${ms} ms`,
  );
}

async function fileSize(path: string): Promise<number> {
  try {
    return (await stat(path)).size;
  } catch {
    return 0;
  }
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
