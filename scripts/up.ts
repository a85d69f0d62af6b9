/**
 * `bun run up`: starts the whole system locally (three Redises, the services, nginx) and supervises
 * it. In the foreground, every process's output is shown prefixed with its name and Ctrl-C stops all
 * of it. With --detach, it returns once everything is healthy and the supervisor keeps running in the
 * background (its output in <state>/stack.out); `bun run down` stops it.
 */
import { closeSync, openSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { CLI_ENV, formatSummary, parseStackArgs, UsageError, USAGE, type StackCliOptions } from "./lib/cli";
import { assertNoRunningStack, readStackRecord, stopRecordedStack } from "./lib/pidfile";
import { requirePrograms } from "./lib/prerequisites";
import { identify, isSameProcess, waitUntil } from "./lib/procfs";
import {
  defaultStateDir,
  startStack,
  REDIS_HEALTH_TIMEOUT_MS,
  SERVICE_HEALTH_TIMEOUT_MS,
  type Stack,
} from "./lib/stack";

/** How often a detaching `up` looks whether the background supervisor is ready. */
const DETACH_POLL_INTERVAL_MS = 200;
/** The background supervisor gives up on its own well before this (each tier has its own timeout). */
const DETACH_READY_TIMEOUT_MS = REDIS_HEALTH_TIMEOUT_MS + 3 * SERVICE_HEALTH_TIMEOUT_MS + 60_000;
/** Lines of stack.out shown when the background supervisor failed to start the stack. */
const SHOWN_FAILURE_LINES = 40;

async function main(): Promise<number> {
  let options: StackCliOptions;
  try {
    options = parseStackArgs(process.argv.slice(2));
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    if (error.message) console.error(`up: ${error.message}\n`);
    console.error(USAGE);
    return error.message ? 2 : 0;
  }
  try {
    requirePrograms();
  } catch (error) {
    console.error(`up: ${(error as Error).message}`);
    return 1;
  }
  return options.detach ? detach(options) : supervise(options);
}

/** Runs the stack in this process until SIGINT, SIGTERM or SIGHUP. */
async function supervise(options: StackCliOptions): Promise<number> {
  let stack: Stack;
  try {
    stack = await startStack({
      replicas: options.replicas,
      balancing: options.balancing,
      portOffset: options.portOffset,
      stateDir: options.stateDir,
    });
  } catch (error) {
    console.error(`\nup: the stack did not start:\n${(error as Error).message}`);
    return 1;
  }
  console.log(formatSummary({ ...stack, processes: stack.describe() }));
  // In the background (up --detach) there is no terminal to press Ctrl-C in.
  if (process.stdin.isTTY) console.log("Ctrl-C stops everything (or `bun run down` from another terminal).\n");

  return new Promise<number>((resolveExit) => {
    let stopping = false;
    const stop = (why: string, code: number) => {
      if (stopping) {
        console.log(`[supervisor] ${why} again: still stopping (processes get SIGKILL after their grace period)`);
        return;
      }
      stopping = true;
      console.log(`[supervisor] ${why}: stopping everything`);
      stack.stop().then(
        () => resolveExit(code),
        (error: unknown) => {
          console.error(`[supervisor] stop failed: ${(error as Error).message}`);
          resolveExit(1);
        },
      );
    };
    for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) process.on(signal, () => stop(signal, 0));
    // A supervisor that dies on a bug must not leave its processes behind unrecorded: stop them first.
    process.on("uncaughtException", (error) => {
      console.error(`[supervisor] ${error.stack ?? error.message}`);
      stop("uncaught exception", 1);
    });
  });
}

/** Starts the supervisor as a background process and returns once its stack is healthy. */
async function detach(options: StackCliOptions): Promise<number> {
  try {
    // Before stack.out is truncated: it may be the output of the stack that is running.
    assertNoRunningStack(options.stateDir);
  } catch (error) {
    console.error(`up: ${(error as Error).message}`);
    return 1;
  }
  const outPath = join(options.stateDir, "stack.out");
  await Bun.write(outPath, "");
  const out = openSync(outPath, "a");
  const env = { ...process.env };
  delete env[CLI_ENV.detach];
  const child = Bun.spawn(
    [
      process.execPath,
      import.meta.path,
      "--replicas",
      String(options.replicas),
      "--balancing",
      options.balancing,
      "--port-offset",
      String(options.portOffset),
      "--state-dir",
      options.stateDir,
    ],
    // Its own session: closing this terminal or Ctrl-C here does not reach it.
    { detached: true, env, stdin: "ignore", stdout: out, stderr: out },
  );
  closeSync(out);
  child.unref();
  const supervisor = identify(child.pid);
  console.log(`Starting the stack in the background (supervisor pid ${child.pid}, output in ${outPath}) ...`);

  const ready = await waitUntil(
    () => {
      if (!supervisor || !isSameProcess(supervisor)) return true;
      const record = readStackRecord(options.stateDir);
      return record?.supervisor.pid === child.pid && record.status === "ready";
    },
    DETACH_READY_TIMEOUT_MS,
    DETACH_POLL_INTERVAL_MS,
  );
  const record = readStackRecord(options.stateDir);
  if (ready && record?.supervisor.pid === child.pid && record.status === "ready") {
    console.log(formatSummary(record));
    const downArgs = [
      ...(options.portOffset ? [`--port-offset ${options.portOffset}`] : []),
      ...(options.stateDir !== defaultStateDir(options.portOffset) ? [`--state-dir ${options.stateDir}`] : []),
    ];
    console.log(`Stop it with \`${["bun run down", ...downArgs].join(" ")}\`.`);
    return 0;
  }
  if (supervisor && isSameProcess(supervisor)) {
    console.error(`up: the stack is not ready after ${DETACH_READY_TIMEOUT_MS / 1000}s; stopping it`);
    if (record) await stopRecordedStack(record, (line) => console.error(`down: ${line}`));
  }
  const lines = readFileSync(outPath, "utf8").trimEnd().split("\n").slice(-SHOWN_FAILURE_LINES);
  console.error(`up: the stack did not start. The last lines of ${outPath}:\n${lines.join("\n")}`);
  return 1;
}

process.exit(await main());
