import { describe, expect, test } from "bun:test";
import { machineCpu, parseCpuTicks, readCpuTicks } from "./machine";

const STAT = `cpu  100 5 50 800 40 3 2 0 0 0
cpu0 50 2 25 400 20 1 1 0 0 0
intr 12345
`;

describe("machine cpu", () => {
  test("busy ticks are user, nice, system, irq, softirq and steal; idle and iowait are not", () => {
    expect(parseCpuTicks(STAT)).toEqual({ busy: 160, total: 1000 });
  });

  test("a text without the aggregate cpu line gives nothing", () => {
    expect(parseCpuTicks("cpu0 1 2 3 4 5 6 7 8\n")).toBeNull();
  });

  test("CPU time per checkout is the busy share of all cores over the window, divided among the checkouts", () => {
    // Half of 2 cores for 10 s is 10 s of CPU; over 5000 checkouts, 2 ms each.
    expect(machineCpu({ busy: 0, total: 0 }, { busy: 500, total: 1000 }, 10_000, 5000, 2)).toEqual({
      busyShare: 0.5,
      msPerCheckout: 2,
    });
    expect(machineCpu({ busy: 0, total: 0 }, { busy: 500, total: 1000 }, 10_000, 0, 2)).toBeUndefined();
  });

  test("this machine's /proc/stat is read", async () => {
    const ticks = await readCpuTicks();
    if (process.platform === "linux") expect(ticks!.total).toBeGreaterThan(ticks!.busy);
    else expect(ticks).toBeNull();
  });
});
