/**
 * stateDir/stack.pids: every process a stack started, so that `bun run down` (or a later `up`) can
 * stop exactly those, by pid, even when the supervisor that started them is gone.
 */
import { existsSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { ProcessRole } from "../../deploy/topology";
import {
  groupMembers,
  identify,
  isOurGroup,
  isSameProcess,
  signalGroup,
  signalProcess,
  waitUntil,
  type ProcessIdentity,
} from "./procfs";

export const PID_FILE_NAME = "stack.pids";

/** How long a process group gets to exit after SIGTERM before it is SIGKILLed. */
export const STOP_TIMEOUT_MS = 10_000;
/** A supervisor stops its processes tier by tier (each up to STOP_TIMEOUT_MS); wait for all of them. */
export const SUPERVISOR_STOP_TIMEOUT_MS = 5 * STOP_TIMEOUT_MS;
/** How often exits are polled for while stopping. */
export const EXIT_POLL_INTERVAL_MS = 50;
/** After SIGKILL a group is gone within moments; waiting longer means something is wrong. */
const KILL_CONFIRM_TIMEOUT_MS = 5_000;

export type RecordedProcess = ProcessIdentity & {
  name: string;
  role: ProcessRole;
  /** The port it serves on (for the gateway, the public port). */
  port: number;
  /** The command it was started with (nginx rewrites its own cmdline, so this is for people). */
  command: string;
  url?: string;
  /** For a Redis: the redis-server under start_redis_with_recovery.sh, once known. */
  redisServerPid?: number;
};

export type StackRecord = {
  status: "starting" | "ready" | "stopping";
  supervisor: ProcessIdentity;
  gatewayUrl: string;
  stateDir: string;
  logDir: string;
  /** In start order; the latest incarnation of each process. */
  processes: RecordedProcess[];
};

export function pidFilePath(stateDir: string): string {
  return join(stateDir, PID_FILE_NAME);
}

export function readStackRecord(stateDir: string): StackRecord | undefined {
  const path = pidFilePath(stateDir);
  if (!existsSync(path)) return undefined;
  try {
    return JSON.parse(readFileSync(path, "utf8")) as StackRecord;
  } catch (error) {
    throw new Error(`cannot read ${path}: ${(error as Error).message}`);
  }
}

/** Written whole and renamed into place, so a reader never sees half a file. */
export function writeStackRecord(stateDir: string, record: StackRecord): void {
  const path = pidFilePath(stateDir);
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(record, null, 2)}\n`);
  renameSync(tmp, path);
}

export function removeStackRecord(stateDir: string): void {
  rmSync(pidFilePath(stateDir), { force: true });
}

/** What of a recorded stack is still alive: its supervisor, and the process groups it started. */
export function liveParts(record: StackRecord): { supervisor: boolean; processes: RecordedProcess[] } {
  return { supervisor: isSameProcess(record.supervisor), processes: record.processes.filter((p) => isOurGroup(p)) };
}

/** Throws if a stack recorded in `stateDir` still runs: two stacks must never share Redis data. */
export function assertNoRunningStack(stateDir: string): void {
  const previous = readStackRecord(stateDir);
  if (!previous) return;
  const live = liveParts(previous);
  if (!live.supervisor && live.processes.length === 0) return;
  const who = live.supervisor
    ? `its supervisor (pid ${previous.supervisor.pid}) is running`
    : `${live.processes.map((p) => p.name).join(", ")} still run`;
  throw new Error(`a stack started from ${stateDir} is still running (${who}); stop it with \`bun run down\` first`);
}

/**
 * Stops one process group that we started: SIGTERM to the group, then SIGKILL to whatever is left
 * after `timeoutMs`. Returns false if the group was already gone (or the pid now names a stranger).
 */
export async function stopGroup(leader: ProcessIdentity, timeoutMs = STOP_TIMEOUT_MS): Promise<boolean> {
  if (!isOurGroup(leader)) return false;
  signalGroup(leader.pid, "SIGTERM");
  const gone = () => groupMembers(leader.pid).length === 0;
  if (await waitUntil(gone, timeoutMs, EXIT_POLL_INTERVAL_MS)) return true;
  if (isOurGroup(leader)) signalGroup(leader.pid, "SIGKILL");
  if (!(await waitUntil(gone, KILL_CONFIRM_TIMEOUT_MS, EXIT_POLL_INTERVAL_MS))) {
    throw new Error(`process group ${leader.pid} survived SIGKILL: pids ${groupMembers(leader.pid).join(", ")}`);
  }
  return true;
}

/**
 * Stops everything a recorded stack started: first its supervisor (which stops its processes in
 * order), then any process group still alive (the supervisor was gone or did not finish).
 */
export async function stopRecordedStack(record: StackRecord, say: (line: string) => void): Promise<void> {
  if (isSameProcess(record.supervisor)) {
    say(`stopping supervisor (pid ${record.supervisor.pid})`);
    signalProcess(record.supervisor.pid, "SIGTERM");
    const exited = await waitUntil(
      () => !isSameProcess(record.supervisor),
      SUPERVISOR_STOP_TIMEOUT_MS,
      EXIT_POLL_INTERVAL_MS,
    );
    if (!exited) {
      say(
        `supervisor (pid ${record.supervisor.pid}) did not exit in ${SUPERVISOR_STOP_TIMEOUT_MS / 1000}s; killing it`,
      );
      if (isSameProcess(record.supervisor)) signalProcess(record.supervisor.pid, "SIGKILL");
    }
  }
  // Reverse start order: the gateway first, the Redises last, as the supervisor itself would.
  for (const process of [...record.processes].reverse()) {
    if (!isOurGroup(process)) continue;
    const alive = identify(process.pid)
      ? `pid ${process.pid}`
      : `leftovers of pid ${process.pid}: ${groupMembers(process.pid).join(", ")}`;
    say(`stopping ${process.name} (${alive})`);
    await stopGroup(process);
  }
}
