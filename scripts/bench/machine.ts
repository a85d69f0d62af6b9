/**
 * What the whole machine spent in CPU while checkouts ran, read from /proc/stat (Linux). CPU time per
 * checkout is a steadier figure than throughput on a machine whose load swings from second to second,
 * so two versions compare on it with fewer runs; and it says how far from saturated the machine was.
 */
import { availableParallelism } from "node:os";

/** Cumulative ticks of all CPUs since boot: busy (user, nice, system, irq, softirq, steal) and total. */
export type CpuTicks = { busy: number; total: number };

export type MachineCpu = {
  /** Share of all cores busy over the window, 0..1. */
  busyShare: number;
  /** CPU time of the whole machine (system under test, load generator, everything else) per decided checkout. */
  msPerCheckout: number;
};

/** Parses the aggregate `cpu` line of /proc/stat; null when there is none (not Linux). */
export function parseCpuTicks(procStat: string): CpuTicks | null {
  const line = procStat.split("\n").find((l) => l.startsWith("cpu "));
  if (!line) return null;
  const [user, nice, system, idle, iowait, irq, softirq, steal] = line.trim().split(/\s+/).slice(1, 9).map(Number);
  const busy = user! + nice! + system! + irq! + softirq! + (steal ?? 0);
  return { busy, total: busy + idle! + iowait! };
}

export async function readCpuTicks(): Promise<CpuTicks | null> {
  try {
    return parseCpuTicks(await Bun.file("/proc/stat").text());
  } catch {
    return null;
  }
}

/** The window's busy share, and CPU time per checkout: busy share × cores × seconds ÷ checkouts. */
export function machineCpu(
  before: CpuTicks,
  after: CpuTicks,
  elapsedMs: number,
  checkouts: number,
  cores = availableParallelism(),
): MachineCpu | undefined {
  const total = after.total - before.total;
  if (total <= 0 || checkouts <= 0) return undefined;
  const busyShare = (after.busy - before.busy) / total;
  return { busyShare, msPerCheckout: (busyShare * cores * elapsedMs) / checkouts };
}

/**
 * The CPU of several windows as one: the busy share weighted by each window's time, the CPU time per
 * checkout by each window's checkouts. Undefined when a window has no figure: a partial one would be
 * read as the whole.
 */
export function mergeCpu(
  parts: ReadonlyArray<{ cpu: MachineCpu | undefined; elapsedMs: number; checkouts: number }>,
): MachineCpu | undefined {
  let busyTime = 0;
  let elapsedMs = 0;
  let cpuMs = 0;
  let checkouts = 0;
  for (const part of parts) {
    if (!part.cpu) return undefined;
    busyTime += part.cpu.busyShare * part.elapsedMs;
    elapsedMs += part.elapsedMs;
    cpuMs += part.cpu.msPerCheckout * part.checkouts;
    checkouts += part.checkouts;
  }
  if (checkouts <= 0 || elapsedMs <= 0) return undefined;
  return { busyShare: busyTime / elapsedMs, msPerCheckout: cpuMs / checkouts };
}
