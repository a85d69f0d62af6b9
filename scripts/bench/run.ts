/**
 * One benchmark run: the chosen shapes in order, each against the system it measures (the skeleton
 * on a private skeleton stack, the others on the running system or a private real stack), and the
 * exit status the outcomes call for.
 */
import { ApiError } from "./client";
import type { BenchOptions } from "./cli";
import { ALL_SHAPES } from "./cli";
import {
  formatResult,
  isFailure,
  withSkeletonFractions,
  type ShapeName,
  type ShapeOutcome,
  type ShapeResult,
} from "./report";
import { runHot } from "./shapes/hot";
import type { PreparedShape, ShapeContext } from "./shapes/measure";
import { runMixed } from "./shapes/mixed";
import { measurePaired } from "./shapes/paired";
import { prepareSkeleton, runSkeleton } from "./shapes/skeleton";
import { runSoak } from "./shapes/soak";
import { prepareUniform, runUniform } from "./shapes/uniform";
import { startPrivateStack, type RunningStack } from "./stacks";

export const EXIT_OK = 0;
export const EXIT_INVARIANT_VIOLATED = 1;
export const EXIT_COULD_NOT_RUN = 2;
/** 128 + SIGINT, as a shell reports a command stopped by Ctrl-C. */
export const EXIT_INTERRUPTED = 130;

const RUNNERS: Record<Exclude<ShapeName, "soak">, (ctx: ShapeContext) => Promise<ShapeResult>> = {
  skeleton: runSkeleton,
  uniform: runUniform,
  hot: runHot,
  mixed: runMixed,
};

/** The skeleton stack a run measures, and how to stop it once measured. */
type Ceiling = { baseUrl: string; stop(): Promise<void> };

export type RunEnvironment = {
  log: (line: string) => void;
  /** Aborted on an interrupt: no further shape starts, no further checkout is sent. */
  signal: AbortSignal;
  /** Every stack the run starts is added here at once, so that an interrupt can stop it. */
  stacks: RunningStack[];
};

/**
 * Runs the shapes in the order of ALL_SHAPES (the skeleton first) and returns their outcomes. With
 * both the skeleton and uniform chosen, those two are measured in turns (shapes/paired.ts), as their
 * ratio is the figure that matters; the other shapes follow, one after the other. The soak runs on a
 * stack of its own, started with the retention it was given.
 */
export async function runShapes(options: BenchOptions, env: RunEnvironment): Promise<ShapeOutcome[]> {
  const { log, signal, stacks } = env;
  const chosen = ALL_SHAPES.filter((s) => options.shapes.includes(s)) as Array<keyof typeof RUNNERS>;
  const paired = chosen.includes("skeleton") && chosen.includes("uniform");
  const outcomes: ShapeOutcome[] = [];
  let realUrl = options.startStack ? undefined : options.url;
  const context = (baseUrl: string): ShapeContext => ({
    baseUrl,
    clients: options.clients,
    seconds: options.seconds,
    warmupSeconds: options.warmupSeconds,
    orders: options.orders,
    log,
    signal,
  });
  /** The system under test: the running one, or a private stack started once, on first use. */
  const realSystem = async (): Promise<string> => {
    if (!realUrl) {
      const stack = await startPrivateStack("real", options.replicas, log, options.balancing);
      stacks.push(stack);
      realUrl = stack.gatewayUrl;
    }
    return realUrl;
  };
  /** The ceiling: a running skeleton stack, or a private one, stopped by `stop`. */
  const skeletonSystem = async (): Promise<Ceiling> => {
    if (options.skeletonUrl) return { baseUrl: options.skeletonUrl, stop: async () => {} };
    const stack = await startPrivateStack("skeleton", options.replicas, log);
    stacks.push(stack);
    return { baseUrl: stack.gatewayUrl, stop: () => stack.stop() };
  };
  const failed = (shape: ShapeName, err: unknown): ShapeOutcome => {
    const error = err instanceof Error ? err.message : String(err);
    log(`[${shape}] could not run: ${error}`);
    if (err instanceof ApiError && err.status === "network" && !options.startStack && shape !== "skeleton") {
      log(`  is the system running at ${options.url}? Start it with \`bun run up --detach\`, or pass --start-stack.`);
    }
    return { shape, error };
  };
  const report = (result: ShapeResult): void => {
    outcomes.push(result);
    console.log(formatResult(result));
  };

  if (options.compareBalancing) {
    if (!signal.aborted) {
      try {
        for (const result of await compareBalancing(options, context, env)) report(result);
      } catch (err) {
        if (!signal.aborted) outcomes.push(failed("uniform", err));
      }
    }
    return outcomes;
  }
  if (paired && !signal.aborted) {
    let skeleton: Ceiling | undefined;
    try {
      skeleton = await skeletonSystem();
      const uniformContext = context(await realSystem());
      const uniform = await prepareUniform(uniformContext);
      for (const result of await measurePaired([prepareSkeleton(context(skeleton.baseUrl)), uniform], uniformContext))
        report(result);
    } catch (err) {
      if (!signal.aborted) outcomes.push(failed("skeleton", err), failed("uniform", err));
    } finally {
      // From here on the ceiling's processes would only compete with the real stack's.
      await skeleton?.stop();
    }
  }
  for (const shape of chosen.filter((s) => !paired || (s !== "skeleton" && s !== "uniform"))) {
    if (signal.aborted) break;
    let skeleton: Ceiling | undefined;
    try {
      if (shape === "skeleton") skeleton = await skeletonSystem();
      const baseUrl = skeleton ? skeleton.baseUrl : await realSystem();
      report(await RUNNERS[shape](context(baseUrl)));
    } catch (err) {
      if (signal.aborted) break;
      outcomes.push(failed(shape, err));
    } finally {
      // The ceiling is measured alone: its processes must not compete with the real stack's.
      await skeleton?.stop();
    }
  }
  if (options.shapes.includes("soak") && !signal.aborted) {
    try {
      const stack = await startPrivateStack("real", options.replicas, log, options.balancing, {
        STEP_RECORD_RETENTION_S: String(options.retentionS),
      });
      stacks.push(stack);
      report(await runSoak(context(stack.gatewayUrl), stack, options.retentionS));
    } catch (err) {
      if (!signal.aborted) outcomes.push(failed("soak", err));
    }
  }
  return withSkeletonFractions(outcomes);
}

/**
 * Uniform on two private stacks, active/standby and round robin, measured in turns (shapes/paired.ts),
 * so that their ratio compares like with like; each result notes its balancing and that ratio.
 */
async function compareBalancing(
  options: BenchOptions,
  context: (baseUrl: string) => ShapeContext,
  env: RunEnvironment,
): Promise<ShapeResult[]> {
  const balancings = ["active-standby", "round-robin"] as const;
  const prepared: PreparedShape[] = [];
  try {
    for (const balancing of balancings) {
      const stack = await startPrivateStack("real", options.replicas, env.log, balancing);
      env.stacks.push(stack);
      prepared.push(await prepareUniform(context(stack.gatewayUrl)));
    }
  } catch (err) {
    for (const shape of prepared) shape.close();
    throw err;
  }
  const [standby, roundRobin] = await measurePaired([prepared[0]!, prepared[1]!], context(""));
  const ratio = `round-robin ÷ active-standby: ${((100 * roundRobin!.throughput) / standby!.throughput).toFixed(1)} % of the throughput`;
  return [standby!, roundRobin!].map((result, i) => ({
    ...result,
    notes: [`${balancings[i]} (${ratio})`, ...result.notes],
  }));
}

/** A shape that could not run outweighs a violation: its invariants were never checked. */
export function exitCodeOf(outcomes: readonly ShapeOutcome[]): number {
  if (outcomes.some(isFailure)) return EXIT_COULD_NOT_RUN;
  if (outcomes.some((o) => !isFailure(o) && !o.invariants.ok)) return EXIT_INVARIANT_VIOLATED;
  return EXIT_OK;
}
