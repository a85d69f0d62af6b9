/**
 * One benchmark run: the chosen shapes in order, each against the system it measures (the skeleton
 * on a private skeleton stack, the others on the running system or a private real stack), and the
 * exit status the outcomes call for.
 */
import { ApiError } from "./client";
import type { BenchOptions } from "./cli";
import { ALL_SHAPES } from "./cli";
import { formatResult, isFailure, withSkeletonFractions, type ShapeName, type ShapeOutcome, type ShapeResult } from "./report";
import { runHot } from "./shapes/hot";
import type { ShapeContext } from "./shapes/measure";
import { runMixed } from "./shapes/mixed";
import { runSkeleton } from "./shapes/skeleton";
import { runUniform } from "./shapes/uniform";
import { startPrivateStack, type RunningStack } from "./stacks";

export const EXIT_OK = 0;
export const EXIT_INVARIANT_VIOLATED = 1;
export const EXIT_COULD_NOT_RUN = 2;
/** 128 + SIGINT, as a shell reports a command stopped by Ctrl-C. */
export const EXIT_INTERRUPTED = 130;

const RUNNERS: Record<ShapeName, (ctx: ShapeContext) => Promise<ShapeResult>> = {
  skeleton: runSkeleton,
  uniform: runUniform,
  hot: runHot,
  mixed: runMixed,
};

export type RunEnvironment = {
  log: (line: string) => void;
  /** Aborted on an interrupt: no further shape starts, no further checkout is sent. */
  signal: AbortSignal;
  /** Every stack the run starts is added here at once, so that an interrupt can stop it. */
  stacks: RunningStack[];
};

/** Runs the shapes in the order of ALL_SHAPES (the skeleton first) and returns their outcomes. */
export async function runShapes(options: BenchOptions, env: RunEnvironment): Promise<ShapeOutcome[]> {
  const { log, signal, stacks } = env;
  const outcomes: ShapeOutcome[] = [];
  let realUrl = options.startStack ? undefined : options.url;
  for (const shape of ALL_SHAPES.filter((s) => options.shapes.includes(s))) {
    if (signal.aborted) break;
    let skeletonStack: RunningStack | undefined;
    try {
      let baseUrl: string;
      if (shape === "skeleton") {
        if (options.skeletonUrl) baseUrl = options.skeletonUrl;
        else {
          skeletonStack = await startPrivateStack("skeleton", options.replicas, log);
          stacks.push(skeletonStack);
          baseUrl = skeletonStack.gatewayUrl;
        }
      } else {
        if (!realUrl) {
          const stack = await startPrivateStack("real", options.replicas, log);
          stacks.push(stack);
          realUrl = stack.gatewayUrl;
        }
        baseUrl = realUrl;
      }
      const result = await RUNNERS[shape]({ baseUrl, clients: options.clients, seconds: options.seconds, warmupSeconds: options.warmupSeconds, orders: options.orders, log, signal });
      outcomes.push(result);
      console.log(formatResult(result));
    } catch (err) {
      if (signal.aborted) break;
      const error = err instanceof Error ? err.message : String(err);
      log(`[${shape}] could not run: ${error}`);
      if (err instanceof ApiError && err.status === "network" && !options.startStack && shape !== "skeleton") {
        log(`  is the system running at ${options.url}? Start it with \`bun run up --detach\`, or pass --start-stack.`);
      }
      outcomes.push({ shape, error });
    } finally {
      // The ceiling is measured alone: its processes must not compete with the real stack's.
      await skeletonStack?.stop();
    }
  }
  return withSkeletonFractions(outcomes);
}

/** A shape that could not run outweighs a violation: its invariants were never checked. */
export function exitCodeOf(outcomes: readonly ShapeOutcome[]): number {
  if (outcomes.some(isFailure)) return EXIT_COULD_NOT_RUN;
  if (outcomes.some((o) => !isFailure(o) && !o.invariants.ok)) return EXIT_INVARIANT_VIOLATED;
  return EXIT_OK;
}
