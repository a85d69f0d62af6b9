/**
 * Commands run for the container set-up: to their end, their output kept or passed through, and
 * apt-get installs of what is missing. What cannot be had is a ContainerSetupError that says why.
 */
import { REPO_ROOT } from "../../../common/src/config";

/** Thrown when the engine, compose or a base image cannot be had; the message says why and what to do. */
export class ContainerSetupError extends Error {
  override name = "ContainerSetupError";
}

export type Say = (line: string) => void;
export const sayOnStderr: Say = (line) => console.error(`[containers] ${line}`);

export type RunResult = { code: number; stdout: string; stderr: string };

/** Runs a command to its end. `echo` passes its output through instead of keeping it. */
export async function run(
  command: string[],
  options: {
    env?: Record<string, string | undefined>;
    cwd?: string;
    echo?: boolean;
    timeoutMs?: number;
    stdin?: string;
  } = {},
): Promise<RunResult> {
  let child;
  try {
    child = Bun.spawn(command, {
      cwd: options.cwd ?? REPO_ROOT,
      env: { ...process.env, ...options.env },
      stdin: options.stdin === undefined ? "ignore" : new TextEncoder().encode(options.stdin),
      stdout: options.echo ? "inherit" : "pipe",
      stderr: options.echo ? "inherit" : "pipe",
    });
  } catch (error) {
    // The program does not exist.
    return { code: 127, stdout: "", stderr: (error as Error).message };
  }
  const timer = options.timeoutMs ? setTimeout(() => child.kill("SIGKILL"), options.timeoutMs) : undefined;
  const [stdout, stderr, code] = await Promise.all([
    options.echo ? "" : new Response(child.stdout as ReadableStream).text(),
    options.echo ? "" : new Response(child.stderr as ReadableStream).text(),
    child.exited,
  ]);
  clearTimeout(timer);
  return { code, stdout, stderr };
}

/** Like run, but a non-zero exit is an error that names the command and shows its output's tail. */
export async function mustRun(command: string[], options: Parameters<typeof run>[1] = {}): Promise<string> {
  const result = await run(command, options);
  if (result.code !== 0) {
    const tail = `${result.stdout}\n${result.stderr}`.trim().split("\n").slice(-15).join("\n");
    throw new ContainerSetupError(`\`${command.join(" ")}\` failed (exit ${result.code})${tail ? `:\n${tail}` : ""}`);
  }
  return result.stdout;
}

export const isRoot = () => process.getuid?.() === 0;
const hasAptGet = () => Bun.which("apt-get") !== null;

export async function aptInstall(packages: string[], say: Say): Promise<void> {
  if (!isRoot() || !hasAptGet()) {
    throw new ContainerSetupError(
      `missing: ${packages.join(", ")}. Install the Debian packages as root: apt-get install -y ${packages.join(" ")}`,
    );
  }
  say(`installing ${packages.join(", ")} with apt-get`);
  const env = { DEBIAN_FRONTEND: "noninteractive" };
  await mustRun(["apt-get", "update", "-qq"], { env });
  await mustRun(["apt-get", "install", "-y", "-qq", ...packages], { env });
}
