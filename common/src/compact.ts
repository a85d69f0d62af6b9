/**
 * Log compaction: keeps recovery time bounded by the number of keys, not the age of the service.
 *  1. The log is renamed to `<service>_log.compacting.txt`; writers notice on their next append and
 *     continue in a new `<service>_log.txt` (a line that raced the rename is written again there).
 *  2. The previous snapshot and the renamed log are folded into the newest state of each key, but
 *     those whose expiry has passed (retention.ts), written to a temporary file, fdatasync'ed, and
 *     renamed over `<service>_snapshot.txt`.
 *  3. The renamed log is deleted.
 * A crash at any point leaves files whose union still holds every line: recovery reads all three, and
 * the next compaction starts by finishing an interrupted one.
 */
import { existsSync, readdirSync, renameSync, rmSync } from "node:fs";
import { open, type FileHandle } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { SERVICES, type ServiceName } from "./config";
import { compactingPath, formatRecord, logPath, snapshotPath } from "./log";
import { foldLatest, parseLog } from "./replay";
import { isExpired } from "./retention";

export type CompactionStats = { linesRead: number; keys: number; ms: number };

export async function compact(logDir: string, service: ServiceName): Promise<CompactionStats> {
  const started = performance.now();
  const compacting = compactingPath(logDir, service);
  const snapshot = snapshotPath(logDir, service);
  if (!existsSync(compacting)) {
    if (!existsSync(logPath(logDir, service))) return { linesRead: 0, keys: 0, ms: 0 };
    renameSync(logPath(logDir, service), compacting);
  }

  let linesRead = 0;
  const latest = new Map();
  for (const path of [snapshot, compacting]) {
    if (!existsSync(path)) continue;
    const { records } = parseLog(await Bun.file(path).text());
    linesRead += records.length;
    foldLatest(records, latest);
  }

  const now = Date.now();
  const at = new Date(now).toISOString();
  // A state whose expiry has passed stays out of the snapshot (retention.ts): its key is gone from Redis.
  const lines = [...latest.entries()]
    .filter(([, { hash }]) => !isExpired(hash, now))
    .sort(([, a], [, b]) => a.seq - b.seq)
    .map(([key, { seq, hash }]) => formatRecord({ seq, at, op: "snapshot", writes: { [key]: hash } }));
  // A temporary file of this compaction's own, so that two at once (their lock lost with its Redis)
  // never write into one file; those that compactions which died left behind are removed first.
  for (const name of readdirSync(dirname(snapshot))) {
    if (name.startsWith(`${basename(snapshot)}.`) && name.endsWith(".tmp"))
      rmSync(join(dirname(snapshot), name), { force: true });
  }
  const temporary = `${snapshot}.${process.pid}.tmp`;
  const file = await open(temporary, "w");
  await writeInSyncedParts(file, lines);
  await file.close();
  renameSync(temporary, snapshot);
  await syncDirectory(dirname(snapshot));
  rmSync(compacting);
  return { linesRead, keys: lines.length, ms: Math.round(performance.now() - started) };
}

/**
 * The snapshot is written and fdatasync'ed in parts of about this many bytes. The services' durable log
 * appends share the disk and wait behind a write-back in progress, so one large write would stall
 * every answer behind it; parts this size keep each wait short (docs/benchmarks.md#compaction).
 */
const SYNCED_PART_BYTES = 4 * 1024 * 1024;

async function writeInSyncedParts(file: FileHandle, lines: readonly string[]): Promise<void> {
  let part: string[] = [];
  let size = 0;
  const flush = async () => {
    await file.write(part.join(""));
    await file.datasync();
    part = [];
    size = 0;
  };
  for (const line of lines) {
    part.push(line);
    size += line.length;
    if (size >= SYNCED_PART_BYTES) await flush();
  }
  await flush();
}

/** Makes a rename durable: the directory entry, not only the file, must reach the disk. */
async function syncDirectory(path: string): Promise<void> {
  const dir = await open(path, "r");
  await dir.sync();
  await dir.close();
}

if (import.meta.main) {
  const service = process.argv[2] as ServiceName;
  const logDir = process.argv[3];
  if (!SERVICES.includes(service) || !logDir) {
    console.error(`usage: compact.ts <${SERVICES.join("|")}> <log dir>`);
    process.exit(2);
  }
  const stats = await compact(logDir, service);
  console.log(`[compact] ${service}: ${stats.linesRead} lines folded into ${stats.keys} keys in ${stats.ms} ms`);
}
