/**
 * The append-only, human-readable service log: one line per committed state change, carrying the
 * sequence number and the absolute resulting state of every key the change wrote. That is all a
 * replay needs (see replay.ts), and replaying a line twice, or out of order, changes nothing.
 *
 *   <seq> <ISO time> <operation> <JSON: { key: { field: value, ... }, ... }>
 *   17 2026-11-26T05:12:01.004Z stock.take {"item:3":{"stock":"9","price":"5"},"op:a1:1.f3c9@1764133920990":{"state":"applied",...}}
 */
import { join } from "node:path";
import type { ServiceName } from "./config";

/** An entity's fields, every value a string (stored as one JSON string, see keyspace.ts). */
export type Hash = Record<string, string>;
/** The absolute state of every key a change wrote. */
export type Writes = Record<string, Hash>;

export type LogRecord = { seq: number; at: string; op: string; writes: Writes };

/** The field holding the sequence number of the change that last wrote the key. */
export const VERSION_FIELD = "v";

/** The number of the change that last wrote a stored state; 0 when there is none (no state, or no number). */
export function versionOf(hash: Hash | null | undefined): number {
  const version = Number(hash?.[VERSION_FIELD]);
  return Number.isFinite(version) ? Math.max(version, 0) : 0;
}

export function logPath(logDir: string, service: ServiceName): string {
  return join(logDir, `${service}_log.txt`);
}

/** The log being folded into the snapshot by a compaction (compact.ts). */
export function compactingPath(logDir: string, service: ServiceName): string {
  return join(logDir, `${service}_log.compacting.txt`);
}

/** The newest state of every key up to the last compaction, in the log's own line format. */
export function snapshotPath(logDir: string, service: ServiceName): string {
  return join(logDir, `${service}_snapshot.txt`);
}

/** Every file that holds log lines, in the order recovery reads them (any order gives the same state). */
export function logFiles(logDir: string, service: ServiceName): string[] {
  return [snapshotPath(logDir, service), compactingPath(logDir, service), logPath(logDir, service)];
}

/** A key's new state as JSON, serialised once for both its log line and its Redis value. */
export type JsonWrite = { key: string; json: string };

export function formatRecord(record: LogRecord): string {
  return formatLine(
    record.seq,
    record.at,
    record.op,
    Object.entries(record.writes).map(([key, hash]) => ({ key, json: JSON.stringify(hash) })),
  );
}

/**
 * The line of a change whose states are already JSON: exactly what formatRecord gives, without
 * building the object of objects. It runs once per change, and for batch_init once per entity.
 */
export function formatLine(seq: number, at: string, op: string, writes: readonly JsonWrite[]): string {
  let text = "";
  for (const { key, json } of writes) text += `${text ? "," : ""}${JSON.stringify(key)}:${json}`;
  return `${seq} ${at} ${op} {${text}}\n`;
}

/** Parses one line; a torn or foreign line (e.g. the tail of a crash) yields null and is skipped. */
export function parseRecord(line: string): LogRecord | null {
  const m = /^(\d+) (\S+) (\S+) (\{.*\})$/.exec(line.trimEnd());
  if (!m) return null;
  try {
    const writes = JSON.parse(m[4]!) as unknown;
    if (typeof writes !== "object" || writes === null || Array.isArray(writes)) return null;
    for (const hash of Object.values(writes)) {
      if (typeof hash !== "object" || hash === null) return null;
    }
    return { seq: Number(m[1]), at: m[2]!, op: m[3]!, writes: writes as Writes };
  } catch {
    return null;
  }
}
