/**
 * The whole system as plain local processes, supervised: three Redises (each through
 * start_redis_with_recovery.sh), the replicas of stock, payment and order, and nginx in front.
 * Used by `bun run up`, the end-to-end and kill tests, and the benchmark.
 *
 *   const stack = await startStack({ replicas: 2, portOffset: 3000, stateDir, logDir });
 *   await stack.kill("stock-1");          // SIGKILL; the supervisor restarts it
 *   await stack.waitHealthy("stock-1");
 *   await stack.stop();
 *
 * Every process is started in its own process group (setsid): signals from the terminal reach only
 * the supervisor, which stops the rest in order, and a group signal also reaches what a process
 * spawned itself (nginx workers, the redis-server under its start script). Every pid is recorded in
 * stateDir/stack.pids with its start time (see pidfile.ts, procfs.ts).
 *
 * Its parts, in scripts/lib/stack/: api.ts (the Stack interface and its options), specs.ts (each
 * process's command, environment and health check, from the topology), process-supervisor.ts (spawn,
 * output, restarts, health waits), supervisor.ts (the stack: tiers, signals, Redis data, the pid file),
 * output.ts (where the output goes).
 */
import { mkdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { REPO_ROOT } from "../../common/src/config";
import { assertNoRunningStack } from "./pidfile";
import { busyPorts } from "./ports";
import { requirePrograms } from "./prerequisites";
import { allPorts, topology } from "../../deploy/topology";
import type { Stack, StackOptions } from "./stack/api";
import { Supervisor } from "./stack/supervisor";

export type { ProcessInfo, Stack, StackEvent, StackOptions } from "./stack/api";
export { memoryOutput, stdoutOutput, type OutputSink } from "./stack/output";
export { REDIS_HEALTH_TIMEOUT_MS, SERVICE_HEALTH_TIMEOUT_MS } from "./stack/specs";
export { INTERNAL_SECRET_FILE } from "./stack/supervisor";

/** The default state folder for a port offset: stacks on different ports never share Redis data. */
export function defaultStateDir(portOffset = 0): string {
  return portOffset === 0 ? resolve(REPO_ROOT, ".state") : resolve(REPO_ROOT, ".state", `offset-${portOffset}`);
}

export const DEFAULT_LOG_DIR = resolve(REPO_ROOT, "logging");

/** The default log folder of a stack with this state folder (see StackOptions.logDir). */
export function defaultLogDir(stateDir: string): string {
  return resolve(stateDir) === defaultStateDir(0) ? DEFAULT_LOG_DIR : join(resolve(stateDir), "logging");
}

export async function startStack(options: StackOptions = {}): Promise<Stack> {
  const programs = requirePrograms();
  const t = topology(options.replicas ?? 1, options.portOffset ?? 0, options.ports ?? {}, options.balancing);
  const stateDir = resolve(options.stateDir ?? defaultStateDir(options.portOffset ?? 0));
  const logDir = resolve(options.logDir ?? defaultLogDir(stateDir));
  mkdirSync(stateDir, { recursive: true });
  mkdirSync(logDir, { recursive: true });

  assertNoRunningStack(stateDir);
  const busy = await busyPorts(allPorts(t));
  if (busy.length > 0) {
    throw new Error(
      `ports already in use: ${busy.map((p) => `${p.port} (${p.name})`).join(", ")}. ` +
        "Another stack may be running (`bun run down`), or pick other ports with --port-offset.",
    );
  }

  const supervisor = new Supervisor(t, programs, { ...options, stateDir, logDir });
  await supervisor.start();
  return supervisor;
}
