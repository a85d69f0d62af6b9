/**
 * Recovery of one service's Redis from its log, run by start_redis_with_recovery.sh while Redis is
 * reachable only through a private Unix socket (REDIS_SOCKET), and before the service's log writer
 * starts: the log, an interrupted compaction's file and the snapshot are replayed, every key taking
 * its newest logged state where Redis holds an older one; then the conservation meter's totals are
 * counted anew from the entities (totals.ts).
 *
 * Lines still in the stream `log:stream` (their changes survived in Redis, their append did not
 * happen yet) are left there: the writer, started next, appends them. No line reaches the log while
 * recovery reads it, since the writer of the Redis that died is gone with it (log-writer.ts). So the
 * sequence counter needs no margin: every number in the log is below it once the newest is applied.
 */
import { Redis } from "ioredis";
import { REPO_ROOT, SERVICES, type ServiceName } from "./config";
import { compactingPath, logPath, snapshotPath } from "./log";
import { applyLatest, foldLatest, parseLog, type LatestState } from "./replay";
import { rebuildTotals } from "./totals";
import { resolve } from "node:path";

export async function recover(service: ServiceName, redis: Redis, logDir: string, say = console.log): Promise<void> {
  const started = performance.now();
  // Nothing at all: the data is gone, replay all of it.
  const empty = (await redis.dbsize()) === 0;
  const latest = new Map<string, LatestState>();
  let records = 0;
  let skipped = 0;
  // The live log first, then an interrupted compaction's file, then the snapshot: in that order a
  // compaction running meanwhile (compact.ts renames the log, writes the snapshot, deletes the
  // renamed log) can never hide a line — each of its steps moves lines only to a file read later.
  for (const path of [logPath(logDir, service), compactingPath(logDir, service), snapshotPath(logDir, service)]) {
    const parsed = parseLog(await textIfPresent(path));
    records += parsed.records.length;
    skipped += parsed.skipped;
    foldLatest(parsed.records, latest);
  }
  const applied = (await applyLatest(redis, service, latest, empty)).keysApplied;
  // The conservation meter's running totals are not logged: counted anew from the entities (totals.ts).
  await rebuildTotals(redis, service);
  const ms = Math.round(performance.now() - started);
  say(
    `[recover] ${service}: ${records} log lines, ${latest.size} keys, ${applied} applied${skipped ? `, ${skipped} torn lines skipped` : ""} in ${ms} ms`,
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
