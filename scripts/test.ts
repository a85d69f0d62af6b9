/**
 * `bun run test` (also scripts/test.sh and .ci/run): every test of the repository, in four `bun test`
 * runs, each started only if the one before passed.
 *
 * Where tests live (the convention this script relies on):
 *   - a test file is a `*.test.ts`, normally under the `test/` folder of a top-level folder
 *     (common/test/, order/test/, stock/test/, payment/test/, scripts/test/). Test files elsewhere
 *     (colocated, like scripts/bench/*.test.ts) are run too, so that none is silently skipped.
 *   - `<folder>/test/e2e/**`: end-to-end tests: a whole stack (scripts/lib/stack.ts), driven through
 *     the gateway. Tests of the whole system belong in scripts/test/e2e/.
 *   - `<folder>/test/kill/**`: kill tests: processes and Redises killed and restarted while the stack
 *     works. Tests of the whole system belong in scripts/test/kill/.
 *   - `<folder>/test/containers/**`: the system in containers (compose.yaml), containers killed and
 *     started again. The end-to-end files that start their stack with startTestStack() run again in
 *     this phase, against the containers (CHECKOUT_TEST_STACK=containers).
 *   - `<folder>/test/kubernetes/**`: what deploy/k8s/ declares, run in containers, its pods killed.
 *     The end-to-end files on startTestStack() run again in this phase against it
 *     (CHECKOUT_TEST_STACK=kubernetes). `bun run k8s:test` runs this phase alone.
 *   - every other test file is a unit or integration test.
 * Runs: 1. unit and integration, 2. end-to-end, 3. kill, 4. containers, 5. kubernetes. Unit tests fail fastest and
 * say most precisely what is broken, so they go first; the kill and container tests are the slowest.
 * The containers phase takes about 10 minutes; CHECKOUT_CONTAINER_TESTS=0 (`bun run test:local`) leaves
 * it out, saying so, for a quick run on a machine without containers. CI runs it.
 * Before the containers run, `bun scripts/compose.ts build` sets up the Docker engine, compose and the
 * base images if they are missing, and builds the images; if it cannot, the phase fails saying why.
 *
 * The kubernetes phase runs only with CHECKOUT_KUBERNETES_TESTS=1, or when named alone:
 * CHECKOUT_TEST_PHASES=kubernetes (a comma-separated list of phase names) runs only the phases named.
 * Extra arguments go to every `bun test` run (e.g. `-t "checkout"`, `--bail`). The last line printed is
 * exactly `N passed, N failed`, summed over the runs; the exit code is non-zero on any failure.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { REPO_ROOT } from "../common/src/config";
import { TEST_STACK_ENV } from "./test/support/test-stack";

type Phase = {
  name: string;
  files: string[];
  /** Environment for this run's `bun test`. */
  env?: Record<string, string>;
  /** A command that must succeed before the run (its output shown). */
  prepare?: string[];
  /** Why the phase does not run by default, and how to run it. */
  optIn?: string;
  /** The variable that, set to 1, runs an opt-in phase. */
  optInEnv?: string;
  /** Why the phase may be left out, and how; absent: it always runs. */
  optOut?: string;
};

/** Folders that never hold the repository's tests (dependencies, logs, state; hidden ones too). */
const SKIPPED_FOLDERS = new Set(["node_modules", "logging"]);
/** Kept from a run's output: enough for bun's summary at its end. */
const KEPT_OUTPUT_CHARS = 64 * 1024;

function discover(): Phase[] {
  const files = [...new Bun.Glob("**/*.test.ts").scanSync({ cwd: REPO_ROOT, dot: false })]
    .filter((path) => path.split("/").every((segment) => !segment.startsWith(".") && !SKIPPED_FOLDERS.has(segment)))
    .sort();
  const isE2e = (path: string) => path.includes("/test/e2e/");
  const isKill = (path: string) => path.includes("/test/kill/");
  const isContainers = (path: string) => path.includes("/test/containers/");
  const isKubernetes = (path: string) => path.includes("/test/kubernetes/");
  const onTestStack = (path: string) => readFileSync(join(REPO_ROOT, path), "utf8").includes("startTestStack(");
  return [
    {
      name: "unit and integration",
      files: files.filter((f) => !isE2e(f) && !isKill(f) && !isContainers(f) && !isKubernetes(f)),
    },
    { name: "end-to-end", files: files.filter(isE2e) },
    { name: "kill", files: files.filter(isKill) },
    {
      name: "containers",
      files: [...files.filter((f) => isE2e(f) && onTestStack(f)), ...files.filter(isContainers)],
      env: { [TEST_STACK_ENV]: "containers" },
      prepare: [process.execPath, join(REPO_ROOT, "scripts", "compose.ts"), "build"],
      optOut: `${CONTAINER_TESTS_ENV}=0 (bun run test:local) leaves them out; CI runs them`,
    },
    {
      name: "kubernetes",
      files: [...files.filter((f) => isE2e(f) && onTestStack(f)), ...files.filter(isKubernetes)],
      env: { [TEST_STACK_ENV]: "kubernetes" },
      prepare: [process.execPath, join(REPO_ROOT, "scripts", "compose.ts"), "build"],
      optIn: `they take about 15 minutes; run them with ${KUBERNETES_TESTS_ENV}=1, or alone with bun run k8s:test`,
      optInEnv: KUBERNETES_TESTS_ENV,
    },
  ];
}

/** Set to 0 to leave the containers phase out (scripts/test/containers/, and the end-to-end files in containers). */
const CONTAINER_TESTS_ENV = "CHECKOUT_CONTAINER_TESTS";
/** Set to 1 to run the kubernetes phase too (scripts/test/kubernetes/, and the end-to-end files on deploy/k8s/). */
const KUBERNETES_TESTS_ENV = "CHECKOUT_KUBERNETES_TESTS";
/** Phase names, comma-separated: only those run, opt-in or not. */
const PHASES_ENV = "CHECKOUT_TEST_PHASES";

/** Per test: integration tests start real servers on a shared 2-core machine. */
const TEST_TIMEOUT_MS = 120_000;

/** Requests a test process may have in flight at once (the consistency shape needs 1000). */
const MAX_HTTP_REQUESTS_IN_FLIGHT = 2_048;

type RunResult = { passed: number; failed: number; exitCode: number };

async function run(phase: Phase, extraArgs: string[]): Promise<RunResult> {
  // "./" makes bun take each argument as a path, not as a substring filter over all test files.
  const command = [
    process.execPath,
    "test",
    `--timeout=${TEST_TIMEOUT_MS}`,
    ...extraArgs,
    ...phase.files.map((f) => `./${f}`),
  ];
  const env: Record<string, string | undefined> = { ...process.env, ...phase.env };
  // Tests drive 1000 checkouts at once (the benchmark's consistency shape); Bun's fetch allows 256 in
  // flight per process unless told otherwise, and reads the setting only at start-up.
  env.BUN_CONFIG_MAX_HTTP_REQUESTS ??= String(MAX_HTTP_REQUESTS_IN_FLIGHT);
  // bun test colours only a terminal; its output passes through a pipe here on its way to one.
  if (process.stderr.isTTY && !env.NO_COLOR) env.FORCE_COLOR = "1";
  const child = Bun.spawn(command, { cwd: REPO_ROOT, env, stdin: "ignore", stdout: "inherit", stderr: "pipe" });

  // bun test reports on stderr; pass it through and keep the tail for the summary.
  let tail = "";
  const decoder = new TextDecoder();
  for await (const chunk of child.stderr as ReadableStream<Uint8Array>) {
    process.stderr.write(chunk);
    tail = (tail + decoder.decode(chunk, { stream: true })).slice(-KEPT_OUTPUT_CHARS);
  }
  const exitCode = await child.exited;
  // biome-ignore lint/suspicious/noControlCharactersInRegex: strips the terminal colour codes bun test prints
  const text = tail.replace(/\x1b\[[0-9;]*m/g, "");
  const count = (word: string) => {
    const matches = [...text.matchAll(new RegExp(`^\\s*(\\d+) ${word}$`, "gm"))];
    return matches.length > 0 ? Number(matches.at(-1)![1]) : 0;
  };
  const passed = count("pass");
  let failed = count("fail");
  if (exitCode !== 0 && failed === 0) {
    // bun exited in failure without naming a failing test (it crashed, or a file did not load):
    // count it, so that the summary never reads "0 failed" for a failed run.
    console.error(`\n[test] the ${phase.name} run exited with code ${exitCode} without reporting a failing test`);
    failed = 1;
  }
  return { passed, failed, exitCode };
}

/** The phase's set-up command; false (after saying so) if it failed. */
async function prepare(phase: Phase): Promise<boolean> {
  const command = phase.prepare!;
  console.error(`[test] ${phase.name}: ${command.map((part) => part.replace(`${REPO_ROOT}/`, "")).join(" ")}`);
  const child = Bun.spawn(command, { cwd: REPO_ROOT, stdin: "ignore", stdout: "inherit", stderr: "inherit" });
  const code = await child.exited;
  if (code !== 0) console.error(`[test] ${phase.name}: its set-up failed (exit ${code}); see above for why`);
  return code === 0;
}

async function main(): Promise<number> {
  const extraArgs = process.argv.slice(2);
  // With a test name filter, a run in which no test matches has nothing to report, not a failure.
  if (extraArgs.some((arg) => arg.startsWith("-t") || arg.startsWith("--test-name-pattern")))
    extraArgs.push("--pass-with-no-tests");
  let passed = 0;
  let failed = 0;
  const named = process.env[PHASES_ENV]
    ?.split(",")
    .map((name) => name.trim())
    .filter(Boolean);
  const phases = discover().filter((phase) => !named || named.includes(phase.name));
  if (named && phases.length === 0) {
    console.error(`[test] ${PHASES_ENV}=${process.env[PHASES_ENV]} names no phase`);
    return 1;
  }
  for (const [i, phase] of phases.entries()) {
    if (phase.files.length === 0) {
      console.error(`[test] ${phase.name}: no test files`);
      continue;
    }
    if (!named && phase.optOut && process.env[CONTAINER_TESTS_ENV] === "0") {
      console.error(`\n[test] ${phase.name}: NOT RUN: ${phase.optOut}`);
      continue;
    }
    if (!named && phase.optIn && process.env[phase.optInEnv ?? KUBERNETES_TESTS_ENV] !== "1") {
      console.error(`\n[test] ${phase.name}: not run: ${phase.optIn}`);
      continue;
    }
    console.error(`\n[test] ${phase.name}: ${phase.files.length} file(s)`);
    const result =
      phase.prepare && !(await prepare(phase)) ? { passed: 0, failed: 1, exitCode: 1 } : await run(phase, extraArgs);
    passed += result.passed;
    failed += result.failed;
    if (result.exitCode !== 0 || result.failed > 0) {
      const skipped = phases
        .slice(i + 1)
        .filter((p) => p.files.length > 0)
        .map((p) => p.name);
      if (skipped.length > 0) console.error(`[test] ${phase.name} failed; not running: ${skipped.join(", ")}`);
      break;
    }
  }
  console.log(`${passed} passed, ${failed} failed`);
  return failed > 0 ? 1 : 0;
}

process.exit(await main());
