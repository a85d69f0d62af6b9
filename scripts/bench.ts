/**
 * `bun run bench`: the project's load generator. Prepares data through the public API, sends
 * checkouts from many clients with no think time, reports throughput and latency, then reads the
 * state back and verifies that no stock or money was lost or created. See `--help`,
 * scripts/bench/run.ts for the order of a run and scripts/bench/shapes/ for what each shape does.
 */
import { parseCli, USAGE, UsageError, type BenchOptions } from "./bench/cli";
import { FETCH_IDLE_POOL_LIMIT, SIDE_CONCURRENCY } from "./bench/client";
import { formatFractions, isFailure } from "./bench/report";
import { EXIT_COULD_NOT_RUN, EXIT_INTERRUPTED, exitCodeOf, runShapes } from "./bench/run";
import { HOT } from "./bench/shapes/hot";
import type { RunningStack } from "./bench/stacks";

/** Bun's fetch holds back requests beyond BUN_CONFIG_MAX_HTTP_REQUESTS (default 256); it is read once at start-up. */
const MAX_HTTP_REQUESTS_VAR = "BUN_CONFIG_MAX_HTTP_REQUESTS";
/** Head-room above the busiest moment (the load's clients plus a reader's requests). */
const HTTP_REQUEST_HEADROOM = 64;

const log = (line: string): void => void process.stderr.write(`${line}\n`);

/**
 * Bun reads its limit of simultaneous fetches when it starts, so a run that needs more than the
 * default (the hot shape alone has 1000 in flight) re-executes itself with the limit raised.
 */
async function ensureFetchConcurrency(options: BenchOptions): Promise<void> {
  const busiest = Math.max(options.clients, options.shapes.includes("hot") ? HOT.concurrency : 0);
  const needed = busiest + SIDE_CONCURRENCY + HTTP_REQUEST_HEADROOM;
  if (Number(process.env[MAX_HTTP_REQUESTS_VAR] ?? 0) >= needed) return;
  const child = Bun.spawn([process.execPath, ...process.argv.slice(1)], {
    env: { ...process.env, [MAX_HTTP_REQUESTS_VAR]: String(needed) },
    stdio: ["inherit", "inherit", "inherit"],
  });
  // Ctrl-C reaches the child from the terminal already (same process group); passing it on as well
  // would count as a second interrupt, which exits without stopping the stacks. SIGTERM is sent to
  // one pid, so it is passed on.
  process.on("SIGINT", () => {});
  process.on("SIGTERM", () => child.kill("SIGTERM"));
  process.exit(await child.exited);
}

async function main(): Promise<number> {
  let options: BenchOptions;
  try {
    options = parseCli(Bun.argv.slice(2));
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    log(`${err.message}\n\n${USAGE}`);
    return EXIT_COULD_NOT_RUN;
  }
  if (options.help) {
    console.log(USAGE);
    return 0;
  }
  await ensureFetchConcurrency(options);
  if (options.clients > FETCH_IDLE_POOL_LIMIT) {
    log(
      `warning: with more than ${FETCH_IDLE_POOL_LIMIT} clients Bun's fetch reopens connections (it keeps at most ` +
        `${FETCH_IDLE_POOL_LIMIT} idle ones per process): the client costs more CPU and leaves sockets in TIME_WAIT`,
    );
  }

  const stacks: RunningStack[] = [];
  const stopStacks = () =>
    Promise.all(stacks.map((stack) => stack.stop().catch((err) => log(`[stack] stop failed: ${err}`))));
  const interrupt = new AbortController();
  const onSignal = () => {
    if (interrupt.signal.aborted) {
      log("interrupted again: exiting without waiting for the stacks to stop");
      process.exit(EXIT_INTERRUPTED);
    }
    log("\ninterrupted: stopping the stacks this run started (interrupt again to exit at once)");
    interrupt.abort();
    void stopStacks();
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);

  let outcomes;
  try {
    outcomes = await runShapes(options, { log, signal: interrupt.signal, stacks });
  } finally {
    await stopStacks();
  }
  if (interrupt.signal.aborted) return EXIT_INTERRUPTED;

  const fractions = formatFractions(outcomes);
  if (fractions) console.log(`\n${fractions}`);
  if (options.jsonFile) {
    await Bun.write(options.jsonFile, `${JSON.stringify(outcomes, null, 2)}\n`);
    log(`results written to ${options.jsonFile}`);
  }
  const violated = outcomes.filter((o) => !isFailure(o) && !o.invariants.ok).map((o) => o.shape);
  if (violated.length > 0) log(`invariants VIOLATED in: ${violated.join(", ")}`);
  return exitCodeOf(outcomes);
}

process.exit(await main());
