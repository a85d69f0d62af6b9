/**
 * The supervisor itself, on a private port range and state folder, with stub services
 * (fixtures/stub-service.ts) in place of the real ones and the real Redis start script.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { createConnection } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SERVICES } from "../../common/src/config";
import { httpOk, redisPing } from "../lib/health";
import { readStackRecord } from "../lib/pidfile";
import { findFreePortOffset } from "../lib/ports";
import { groupMembers, isAlive } from "../lib/procfs";
import { memoryOutput, startStack, type Stack, type StackEvent } from "../lib/stack";
import { LOOPBACK } from "../../deploy/topology";

const STUB = join(import.meta.dir, "fixtures", "stub-service.ts");
const CRASHING = join(import.meta.dir, "fixtures", "crashing-service.ts");
const stubs = { order: STUB, stock: STUB, payment: STUB };

/** Sends one inline command to a Redis and returns its first answer line. */
function redisCommand(port: number, command: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = createConnection({ host: LOOPBACK, port });
    let answer = "";
    socket.on("connect", () => socket.write(`${command}\r\n`));
    socket.on("data", (chunk) => {
      answer += chunk.toString();
      if (answer.includes("\r\n")) {
        socket.destroy();
        resolve(answer.slice(0, answer.indexOf("\r\n")));
      }
    });
    socket.on("error", reject);
  });
}

function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

describe("a running stack", () => {
  const output = memoryOutput();
  const events: StackEvent[] = [];
  let stack: Stack;
  let stateDir: string;
  let logDir: string;
  /** Every process group leader the stack ever had, to check at the end that none is left. */
  const leaders = new Set<number>();
  const remember = () => {
    for (const p of stack.describe()) if (p.pid) leaders.add(p.pid);
  };
  /** The next event `matches` accepts; subscribed at once, so that it cannot be missed. */
  const nextEvent = (matches: (e: StackEvent) => boolean) =>
    new Promise<StackEvent>((resolve) => {
      const unsubscribe = stack.onEvent((e) => {
        if (!matches(e)) return;
        unsubscribe();
        resolve(e);
      });
    });

  beforeAll(async () => {
    stateDir = tempDir("stack-state-");
    logDir = tempDir("stack-logs-");
    stack = await startStack({
      replicas: 2,
      portOffset: await findFreePortOffset(2),
      stateDir,
      logDir,
      entrypoints: stubs,
      output,
      onEvent: (e) => events.push(e),
    });
    remember();
  });

  afterAll(async () => {
    await stack?.stop();
    rmSync(stateDir, { recursive: true, force: true });
    rmSync(logDir, { recursive: true, force: true });
  });

  test("every process is healthy, and the gateway routes to the replicas", async () => {
    await stack.waitHealthy();
    expect(stack.names).toEqual([
      "redis-order",
      "redis-stock",
      "redis-payment",
      "stock-1",
      "stock-2",
      "payment-1",
      "payment-2",
      "order-1",
      "order-2",
      "gateway",
    ]);
    for (const service of SERVICES) {
      expect(await redisPing(stack.ports.redis[service])).toBe(true);
      for (const url of stack.urls[service]) expect(await httpOk(`${url}/health`)).toBe(true);
    }
    const echoed = (await (await fetch(`${stack.gatewayUrl}/orders/find/o1`)).json()) as Record<string, string>;
    expect(echoed.path).toBe("/find/o1");
    // Order reaches every stock and payment replica directly.
    expect(echoed.stockUrls).toBe(stack.urls.stock.join(","));
    expect(echoed.paymentUrls).toBe(stack.urls.payment.join(","));
  });

  test("stack.pids lists every process it started, with the pids it reports", () => {
    const record = readStackRecord(stateDir)!;
    expect(record.status).toBe("ready");
    expect(record.supervisor.pid).toBe(process.pid);
    expect(record.processes.map((p) => p.name)).toEqual([...stack.names]);
    for (const p of record.processes) {
      if (p.role !== "redis") expect(p.pid).toBe(stack.pid(p.name)!);
      else expect(p.redisServerPid).toBe(stack.pid(p.name)!);
    }
  });

  test("a SIGKILLed service replica is restarted by the supervisor", async () => {
    const before = stack.pid("stock-1")!;
    await stack.kill("stock-1");
    expect(isAlive(before)).toBe(false);
    await stack.waitHealthy("stock-1");
    remember();
    expect(stack.pid("stock-1")).not.toBe(before);
    expect(stack.restartCount("stock-1")).toBe(1);
    expect(output.lines()).toContain("[supervisor] stock-1 exited (signal SIGKILL); restarting");
    expect(events).toContainEqual(
      expect.objectContaining({ type: "exit", name: "stock-1", signal: "SIGKILL", restarting: true }),
    );
    expect(events).toContainEqual(expect.objectContaining({ type: "restart", name: "stock-1", restarts: 1 }));
  });

  test("a SIGKILLed redis-server comes back through its start script", async () => {
    const before = stack.pid("redis-stock")!;
    await stack.kill("redis-stock");
    expect(isAlive(before)).toBe(false);
    await stack.waitHealthy("redis-stock");
    remember();
    expect(stack.pid("redis-stock")).not.toBe(before);
    expect(stack.restartCount("redis-stock")).toBe(1);
    expect(await redisPing(stack.ports.redis.stock)).toBe(true);
  });

  test("a SIGKILLed gateway takes its workers with it and comes back on the same port", async () => {
    const master = stack.pid("gateway")!;
    await stack.kill("gateway");
    expect(groupMembers(master)).toEqual([]);
    await stack.waitHealthy("gateway");
    remember();
    expect(await httpOk(`${stack.gatewayUrl}/stock/health`)).toBe(true);
  });

  test("with restarts off, a killed process stays down until they are on again", async () => {
    const pid = stack.pid("payment-2")!;
    const restartsBefore = stack.restartCount("payment-2");
    stack.setRestart(false);
    // The supervisor decides whether to restart when it handles the exit: that decision is what is checked.
    const exit = nextEvent((e) => e.type === "exit" && e.name === "payment-2");
    await stack.kill("payment-2");
    expect(await exit).toMatchObject({ pid, signal: "SIGKILL", restarting: false });
    expect(output.lines()).toContain(
      "[supervisor] payment-2 exited (signal SIGKILL); not restarting (restarts are off)",
    );
    expect(stack.pid("payment-2")).toBeUndefined();
    expect(stack.restartCount("payment-2")).toBe(restartsBefore);
    stack.setRestart(true);
    await stack.waitHealthy("payment-2");
    remember();
  });

  test("wipeRedisData empties a Redis and brings it back", async () => {
    const port = stack.ports.redis.stock;
    expect(await redisCommand(port, "SET wiped-key 1")).toBe("+OK");
    await stack.wipeRedisData("stock");
    remember();
    expect(await redisCommand(port, "EXISTS wiped-key")).toBe(":0");
  });

  test("stop ends every process it started and removes stack.pids", async () => {
    remember();
    await stack.stop();
    for (const leader of leaders) expect({ leader, left: groupMembers(leader) }).toEqual({ leader, left: [] });
    expect(existsSync(join(stateDir, "stack.pids"))).toBe(false);
  });
});

describe("starting a stack", () => {
  test("a process that dies while starting fails the start with its name and last output, and nothing is left", async () => {
    const stateDir = tempDir("stack-crash-");
    const exited: number[] = [];
    try {
      const started = startStack({
        portOffset: await findFreePortOffset(1),
        stateDir,
        logDir: stateDir,
        entrypoints: { ...stubs, payment: CRASHING },
        output: memoryOutput(),
        onEvent: (e) => e.type === "exit" && exited.push(e.pid),
      });
      await expect(started).rejects.toThrow(/payment-1 exited while starting[\s\S]*cannot start \(on purpose\)/);
      // Three Redises, stock-1, and payment-1 at least once.
      expect(exited.length).toBeGreaterThanOrEqual(5);
      for (const leader of exited) expect({ leader, left: groupMembers(leader) }).toEqual({ leader, left: [] });
      expect(existsSync(join(stateDir, "stack.pids"))).toBe(false);
    } finally {
      rmSync(stateDir, { recursive: true, force: true });
    }
  });

  test("a port in use is named before anything starts", async () => {
    const offset = await findFreePortOffset(1);
    const blocker = Bun.serve({ hostname: LOOPBACK, port: 8201 + offset, fetch: () => new Response("taken") });
    const stateDir = tempDir("stack-busy-");
    try {
      await expect(
        startStack({ portOffset: offset, stateDir, entrypoints: stubs, output: memoryOutput() }),
      ).rejects.toThrow(new RegExp(`${8201 + offset} \\(stock-1\\)`));
    } finally {
      await blocker.stop(true);
      rmSync(stateDir, { recursive: true, force: true });
    }
  });
});
