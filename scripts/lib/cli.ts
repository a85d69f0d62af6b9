/** The options `bun run up` and `bun run down` share, from flags or the environment. */
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { BALANCINGS, DEFAULT_BALANCING, type Balancing } from "../../common/src/config";
import type { ProcessInfo } from "./stack";
import { defaultStateDir } from "./stack";
import { MAX_REPLICAS } from "../../deploy/topology";

/**
 * Replicas of each service unless told otherwise: two, as in compose.yaml, so that a replica that dies
 * is stood in for by the other one (checkouts are re-sent by the gateway) and clients see no error.
 */
export const DEFAULT_REPLICAS = 2;

export type StackCliOptions = {
  replicas: number;
  balancing: Balancing;
  portOffset: number;
  stateDir: string;
  detach: boolean;
};

/** Flag → environment variable that sets it when the flag is absent. */
export const CLI_ENV = {
  replicas: "STACK_REPLICAS",
  balancing: "STACK_BALANCING",
  portOffset: "STACK_PORT_OFFSET",
  stateDir: "STACK_STATE_DIR",
  detach: "STACK_DETACH",
} as const;

export class UsageError extends Error {}

export function parseStackArgs(argv: string[], env: Record<string, string | undefined> = process.env): StackCliOptions {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        replicas: { type: "string" },
        balancing: { type: "string" },
        "port-offset": { type: "string" },
        "state-dir": { type: "string" },
        detach: { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  if (values.help) throw new UsageError("");
  const replicas = integer(
    "--replicas",
    values.replicas ?? env[CLI_ENV.replicas] ?? String(DEFAULT_REPLICAS),
    1,
    MAX_REPLICAS,
  );
  const balancing = balancingOf("--balancing", values.balancing ?? env[CLI_ENV.balancing] ?? DEFAULT_BALANCING);
  const portOffset = integer("--port-offset", values["port-offset"] ?? env[CLI_ENV.portOffset] ?? "0", -6000, 57_000);
  const stateDirArg = values["state-dir"] ?? env[CLI_ENV.stateDir];
  const detach = values.detach ?? ["1", "true", "yes"].includes((env[CLI_ENV.detach] ?? "").toLowerCase());
  return {
    replicas,
    balancing,
    portOffset,
    stateDir: stateDirArg ? resolve(stateDirArg) : defaultStateDir(portOffset),
    detach,
  };
}

/** One of BALANCINGS, or a UsageError naming them. */
export function balancingOf(flag: string, text: string): Balancing {
  if ((BALANCINGS as readonly string[]).includes(text)) return text as Balancing;
  throw new UsageError(`${flag} must be one of ${BALANCINGS.join(", ")}, got "${text}"`);
}

function integer(flag: string, text: string, min: number, max: number): number {
  const n = Number(text);
  if (!/^-?\d+$/.test(text.trim()) || n < min || n > max)
    throw new UsageError(`${flag} must be an integer in [${min}, ${max}], got "${text}"`);
  return n;
}

export const USAGE = `Usage:
  bun run up   [--replicas N] [--balancing B] [--port-offset K] [--state-dir DIR] [--detach]
  bun run down [--port-offset K] [--state-dir DIR]

  --replicas N      replicas of each service (default ${DEFAULT_REPLICAS}, as in compose.yaml; env ${CLI_ENV.replicas})
  --balancing B     how the gateway and the order service spread requests over the replicas:
                    active-standby (default: the first takes every request, the others stand in
                    while it is down) or round-robin (each in turn, as a Kubernetes Service); env ${CLI_ENV.balancing}
  --port-offset K   shift every port by K, to run beside another stack (default 0; env ${CLI_ENV.portOffset})
  --state-dir DIR   Redis data, nginx files, stack.pids (default .state, or .state/offset-K; env ${CLI_ENV.stateDir});
                    the services log to logging/ for the default state folder, to DIR/logging for any other
  --detach          return once healthy; the supervisor keeps running, its output in DIR/stack.out (env ${CLI_ENV.detach}=1)`;

type SummaryRow = Pick<ProcessInfo, "name" | "role" | "port" | "url" | "pid" | "redisServerPid">;

/** Where everything is: printed by `up` once the stack is healthy. */
export function formatSummary(stack: {
  gatewayUrl: string;
  logDir: string;
  stateDir: string;
  processes: SummaryRow[];
}): string {
  const width = Math.max(...stack.processes.map((p) => p.name.length));
  const row = (p: SummaryRow) => {
    const name = p.name.padEnd(width);
    if (p.role === "redis") {
      const server = p.redisServerPid ? `redis-server pid ${p.redisServerPid}` : "redis-server starting";
      return `  ${name}  redis://127.0.0.1:${p.port}   ${server} (start script pid ${p.pid ?? "-"})`;
    }
    return `  ${name}  ${p.url}   pid ${p.pid ?? "-"}`;
  };
  return [
    "",
    `The stack is up. Gateway: ${stack.gatewayUrl}`,
    ...stack.processes.map(row),
    `  logs   ${stack.logDir}`,
    `  state  ${stack.stateDir}`,
    "",
  ].join("\n");
}
