/**
 * Private stacks for a benchmark run: the real services or the skeletons, started through the local
 * stack supervisor (scripts/lib/stack.ts) on ports nothing else uses, and stopped at the end.
 */
import { createWriteStream, mkdirSync, rmSync } from "node:fs";
import { resolve } from "node:path";
import { DEFAULT_BALANCING, REPO_ROOT, type Balancing, type ServiceName } from "../../common/src/config";
import { liveParts, readStackRecord } from "../lib/pidfile";
import { findFreePortOffset } from "../lib/ports";
import { startStack } from "../lib/stack";

export type StackKind = "real" | "skeleton";

/** What the benchmark needs of a stack it started. `stop` may be called more than once. */
export type RunningStack = {
  readonly gatewayUrl: string;
  readonly redisPorts: Readonly<Record<ServiceName, number>>;
  stop(): Promise<void>;
};

const SKELETON_DIR = resolve(import.meta.dir, "skeleton");
export const SKELETON_ENTRYPOINTS = {
  order: resolve(SKELETON_DIR, "order.ts"),
  stock: resolve(SKELETON_DIR, "stock.ts"),
  payment: resolve(SKELETON_DIR, "payment.ts"),
} as const;

/** The processes' output goes here rather than into the benchmark's report. */
const OUTPUT_FILE_NAME = "stack-output.log";

/**
 * Each run starts from empty Redises and logs in .state/bench-<kind> (git ignores .state/), which is
 * left behind for a post-mortem until the next run replaces it; one folder per kind keeps the disk
 * use bounded. A folder whose stack still runs (another benchmark) is never touched.
 */
function freshStateDir(kind: StackKind, balancing: Balancing): string {
  const dir = resolve(
    REPO_ROOT,
    ".state",
    balancing === DEFAULT_BALANCING ? `bench-${kind}` : `bench-${kind}-${balancing}`,
  );
  const previous = readStackRecord(dir);
  if (previous) {
    const live = liveParts(previous);
    if (live.supervisor || live.processes.length > 0) {
      throw new Error(
        `a benchmark's ${kind} stack is still running from ${dir}; stop it (bun run down --state-dir ${dir}) or wait for it`,
      );
    }
  }
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  return dir;
}

/** `env`: extra environment for every service replica (a setting such as STEP_RECORD_RETENTION_S). */
export async function startPrivateStack(
  kind: StackKind,
  replicas: number,
  log: (line: string) => void,
  balancing: Balancing = DEFAULT_BALANCING,
  env: Record<string, string> = {},
): Promise<RunningStack> {
  const portOffset = await findFreePortOffset(replicas);
  const stateDir = freshStateDir(kind, balancing);
  const outputFile = resolve(stateDir, OUTPUT_FILE_NAME);
  const output = createWriteStream(outputFile, { flags: "a" });
  log(
    `[stack] starting a private ${kind} stack, ${replicas} replica(s) of each service, ${balancing} (port offset ${portOffset}; output in ${outputFile})`,
  );
  const stack = await startStack({
    replicas,
    balancing,
    portOffset,
    stateDir,
    logDir: resolve(stateDir, "logging"),
    output: (line) => void output.write(`${line}\n`),
    env,
    ...(kind === "skeleton" ? { entrypoints: SKELETON_ENTRYPOINTS } : {}),
  });
  log(`[stack] ${kind} stack ready at ${stack.gatewayUrl}`);
  // Both the end of a shape and an interrupt may stop the stack; the second waits for the first.
  let stopped: Promise<void> | undefined;
  return {
    gatewayUrl: stack.gatewayUrl,
    redisPorts: stack.ports.redis,
    stop() {
      stopped ??= (async () => {
        log(`[stack] stopping the ${kind} stack`);
        await stack.stop();
        output.end();
      })();
      return stopped;
    },
  };
}
