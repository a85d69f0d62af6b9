/** The benchmark's command line, parsed and checked without side effects. */
import { parseArgs } from "node:util";
import { DEFAULT_BALANCING, type Balancing } from "../../common/src/config";
import { balancingOf, DEFAULT_REPLICAS, UsageError as StackUsageError } from "../lib/cli";
import { MAX_REPLICAS } from "../../deploy/topology";
import type { ShapeName } from "./report";
import { SOAK } from "./shapes/soak";

export const DEFAULTS = {
  url: "http://127.0.0.1:8000",
  shape: "uniform",
  clients: 64,
  seconds: 10,
  /** Unmeasured checkouts before each measured run (uniform, mixed, skeleton). */
  warmupSeconds: 3,
  /** The API's stress shape prepares 100 000 orders. */
  orders: 100_000,
} as const;

/** `all` measures the ceiling first (in turns with uniform), so the real shapes can be reported as a fraction of it. */
export const ALL_SHAPES: readonly ShapeName[] = ["skeleton", "uniform", "hot", "mixed"];
const SHAPE_CHOICES = [...ALL_SHAPES, "soak", "all"] as const;
const MAX_CLIENTS = 10_000;
const MAX_SECONDS = 3_600;
const MAX_ORDERS = 10_000_000;
/** A year: longer than any run, for a soak whose records are all kept. */
const MAX_RETENTION_S = 365 * 24 * 60 * 60;

export type BenchOptions = {
  url: string;
  shapes: ShapeName[];
  clients: number;
  seconds: number;
  warmupSeconds: number;
  orders: number;
  /** soak: the step records' retention of the stack it starts, in seconds. */
  retentionS: number;
  jsonFile: string | undefined;
  startStack: boolean;
  /** Replicas of each service in the stacks the benchmark starts (the skeleton's too). */
  replicas: number;
  /** How the real stacks the benchmark starts spread requests over their replicas. */
  balancing: Balancing;
  /**
   * Uniform measured in turns on two private stacks, one active/standby and one round robin, each
   * as a fraction of the other; replaces the chosen shapes.
   */
  compareBalancing: boolean;
  /** A skeleton stack that is already running; otherwise the skeleton shape starts its own. */
  skeletonUrl: string | undefined;
  help: boolean;
};

export const USAGE = `bun run bench [options]

  --shape S         uniform | hot | mixed | skeleton | soak | all (default ${DEFAULTS.shape});
                    all = skeleton and uniform in turns of a few seconds, then hot
                    and mixed; each real shape as a fraction of the skeleton;
                    soak = checkouts for --seconds (default ${SOAK.defaultSeconds}) on a stack of its own whose
                    step records are kept --retention seconds, each Redis's memory
                    and keys sampled, and their slope over the last half printed
  --clients C       concurrent clients, no think time (default ${DEFAULTS.clients}; hot always uses 1000)
  --seconds T       how long checkouts are sent and measured (default ${DEFAULTS.seconds})
  --warmup W        seconds of unmeasured checkouts first, so the processes run warm (default ${DEFAULTS.warmupSeconds})
  --orders N        orders prepared by uniform and mixed (default ${DEFAULTS.orders})
  --retention S     soak: STEP_RECORD_RETENTION_S of its stack (default ${SOAK.defaultRetentionS})
  --url URL         the gateway of a running system (default ${DEFAULTS.url})
  --start-stack     start a private stack for the run and stop it at the end
  --replicas N      replicas of each service in the stacks it starts, skeleton included (default ${DEFAULT_REPLICAS})
  --balancing B     how the real stacks it starts spread requests over the replicas:
                    active-standby (default) or round-robin (as a Kubernetes Service)
  --compare-balancing
                    uniform on two private stacks in turns, active-standby and round-robin,
                    and the ratio of their throughputs (implies --start-stack)
  --skeleton-url U  measure an already running skeleton stack instead of starting one
  --json FILE       write the results as JSON
  --help            this text

Exits 1 when an invariant is violated, 2 when a shape could not run.`;

export class UsageError extends Error {
  override name = "UsageError";
}

function integer(name: string, raw: string | undefined, fallback: number, min: number, max: number): number {
  if (raw === undefined) return fallback;
  if (!/^\d+$/.test(raw)) throw new UsageError(`--${name} must be a whole number, got "${raw}"`);
  const value = Number(raw);
  if (value < min || value > max) throw new UsageError(`--${name} must be between ${min} and ${max}, got ${value}`);
  return value;
}

/**
 * Only loopback targets are accepted: the benchmark opens up to a thousand connections at once
 * and is meant for the local stack, not for pointing at someone else's machine.
 */
export function loopbackUrl(name: string, raw: string): string {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new UsageError(`--${name} is not a URL: "${raw}"`);
  }
  if (url.protocol !== "http:") throw new UsageError(`--${name} must be an http:// URL`);
  const host = url.hostname;
  const loopback = host === "localhost" || host === "[::1]" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
  if (!loopback)
    throw new UsageError(`--${name} must point at a loopback address (127.0.0.0/8, ::1, localhost), got ${host}`);
  return url.origin;
}

export function parseCli(argv: readonly string[]): BenchOptions {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      strict: true,
      allowPositionals: false,
      options: {
        shape: { type: "string" },
        clients: { type: "string" },
        seconds: { type: "string" },
        warmup: { type: "string" },
        orders: { type: "string" },
        retention: { type: "string" },
        url: { type: "string" },
        json: { type: "string" },
        "start-stack": { type: "boolean" },
        replicas: { type: "string" },
        balancing: { type: "string" },
        "compare-balancing": { type: "boolean" },
        "skeleton-url": { type: "string" },
        help: { type: "boolean", short: "h" },
      },
    }).values;
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const shape = parsed.shape ?? DEFAULTS.shape;
  if (!(SHAPE_CHOICES as readonly string[]).includes(shape)) {
    throw new UsageError(`--shape must be one of ${SHAPE_CHOICES.join(", ")}, got "${shape}"`);
  }
  const compareBalancing = parsed["compare-balancing"] ?? false;
  const startStack = (parsed["start-stack"] ?? false) || compareBalancing;
  const soak = shape === "soak";
  if (soak && parsed.url !== undefined)
    throw new UsageError("--shape soak starts a stack of its own, with its retention: --url does not apply");
  if (!soak && parsed.retention !== undefined) throw new UsageError("--retention is for --shape soak");
  if (startStack && parsed.url !== undefined)
    throw new UsageError("--start-stack (or --compare-balancing) and --url exclude each other");
  let balancing: Balancing;
  try {
    balancing = balancingOf("--balancing", parsed.balancing ?? DEFAULT_BALANCING);
  } catch (err) {
    if (err instanceof StackUsageError) throw new UsageError(err.message);
    throw err;
  }
  return {
    url: loopbackUrl("url", parsed.url ?? DEFAULTS.url),
    shapes: shape === "all" ? [...ALL_SHAPES] : [shape as ShapeName],
    clients: integer("clients", parsed.clients, DEFAULTS.clients, 1, MAX_CLIENTS),
    seconds: integer("seconds", parsed.seconds, soak ? SOAK.defaultSeconds : DEFAULTS.seconds, 1, MAX_SECONDS),
    warmupSeconds: integer("warmup", parsed.warmup, DEFAULTS.warmupSeconds, 0, MAX_SECONDS),
    orders: integer("orders", parsed.orders, DEFAULTS.orders, 1, MAX_ORDERS),
    retentionS: integer("retention", parsed.retention, SOAK.defaultRetentionS, SOAK.defaultRetentionS, MAX_RETENTION_S),
    jsonFile: parsed.json,
    startStack,
    replicas: integer("replicas", parsed.replicas, DEFAULT_REPLICAS, 1, MAX_REPLICAS),
    balancing,
    compareBalancing,
    skeletonUrl: parsed["skeleton-url"] === undefined ? undefined : loopbackUrl("skeleton-url", parsed["skeleton-url"]),
    help: parsed.help ?? false,
  };
}
