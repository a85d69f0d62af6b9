/**
 * Process identity and process groups, read from /proc (Linux).
 *
 * A pid alone does not name a process: once it exits, the kernel may hand the number to another one.
 * (pid, start time) does, so every pid the stack records carries its start time, and nothing is
 * signalled unless both still match.
 *
 * Every process the stack starts leads its own process group (it is spawned with setsid), so that
 * what it spawns itself (nginx workers, the redis-server under start_redis_with_recovery.sh, the
 * recovery run) is reached by one signal to the group, and nothing of it is left behind.
 */
import { readdirSync, readFileSync } from "node:fs";

export type ProcessIdentity = { pid: number; startTime: number };

type Stat = { ppid: number; pgid: number; startTime: number; state: string };

/** Fields of /proc/<pid>/stat after the command name (which may itself hold spaces and parentheses). */
function readStat(pid: number): Stat | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return undefined;
  }
  const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
  // After the name: state(3) ppid(4) pgrp(5) ... starttime(22); fields[0] is field 3.
  const state = fields[0] ?? "?";
  return { state, ppid: Number(fields[1]), pgid: Number(fields[2]), startTime: Number(fields[19]) };
}

/** The identity of a live process, or undefined if there is none (a zombie counts as gone). */
export function identify(pid: number): ProcessIdentity | undefined {
  const stat = readStat(pid);
  if (!stat || stat.state === "Z") return undefined;
  return { pid, startTime: stat.startTime };
}

/** Whether the process recorded as `who` is still that same process. */
export function isSameProcess(who: ProcessIdentity): boolean {
  return identify(who.pid)?.startTime === who.startTime;
}

export function isAlive(pid: number): boolean {
  return identify(pid) !== undefined;
}

export function processGroupOf(pid: number): number | undefined {
  return readStat(pid)?.pgid;
}

/** The live members of a process group (including its leader, if alive). */
export function groupMembers(pgid: number): number[] {
  const members: number[] = [];
  for (const entry of readdirSync("/proc")) {
    const pid = Number(entry);
    if (!Number.isInteger(pid) || pid <= 0) continue;
    const stat = readStat(pid);
    if (stat && stat.pgid === pgid && stat.state !== "Z") members.push(pid);
  }
  return members;
}

/**
 * Whether the process group led by the recorded leader is still ours to signal.
 *
 * If the leader lives, it must be the same process (start time). If it is gone, the group can only
 * still exist through members it left behind: Linux does not reuse a number while any process still
 * has it as its group id, so those members are the leader's own children (e.g. nginx workers after
 * the master was SIGKILLed), never a stranger's group.
 */
export function isOurGroup(leader: ProcessIdentity): boolean {
  const now = identify(leader.pid);
  if (now) return now.startTime === leader.startTime;
  return groupMembers(leader.pid).length > 0;
}

/** Sends a signal to a whole process group; false if the group no longer exists. */
export function signalGroup(pgid: number, signal: NodeJS.Signals): boolean {
  try {
    process.kill(-pgid, signal);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ESRCH") return false;
    throw error;
  }
}

/** Sends a signal to one process; false if it no longer exists. */
export function signalProcess(pid: number, signal: NodeJS.Signals): boolean {
  try {
    process.kill(pid, signal);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ESRCH") return false;
    throw error;
  }
}

/** Polls until `done()` holds or `timeoutMs` passes; true if it held. */
export async function waitUntil(
  done: () => boolean | Promise<boolean>,
  timeoutMs: number,
  intervalMs: number,
): Promise<boolean> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    if (await done()) return true;
    if (performance.now() >= deadline) return false;
    await Bun.sleep(intervalMs);
  }
}
