/**
 * The programs the local stack runs, where to find them, and what installs them when they are missing.
 * scripts/setup.sh installs them on Debian; this is the check every entry point makes before starting.
 */
import { existsSync, mkdirSync, rmSync, symlinkSync } from "node:fs";
import { basename, dirname, join } from "node:path";

export type Program = "bun" | "redis-server" | "redis-cli" | "nginx" | "bash";

/** How to get each program on Debian (apt) or from npm. */
export const INSTALL_HINT: Readonly<Record<Program, string>> = {
  bun: "npm package `bun` (npm install -g bun), or see https://bun.sh",
  "redis-server": "Debian package `redis-server` (apt-get install -y redis-server)",
  "redis-cli": "Debian package `redis-tools` (installed with `redis-server`)",
  nginx: "Debian package `nginx` (apt-get install -y nginx)",
  bash: "Debian package `bash`",
};

/**
 * Folders searched after PATH. A non-root user's PATH on Debian lacks the sbin folders, where nginx
 * lives.
 */
const EXTRA_DIRS = ["/usr/sbin", "/usr/local/sbin", "/sbin", "/usr/local/bin", "/usr/bin", "/usr/local/nginx/sbin"];

export function findProgram(program: Program): string | undefined {
  // The bun running this script is the bun the stack uses, wherever it was installed.
  if (program === "bun" && process.versions.bun) return process.execPath;
  const onPath = Bun.which(program);
  if (onPath) return onPath;
  return EXTRA_DIRS.map((dir) => `${dir}/${program}`).find((path) => existsSync(path));
}

export type Programs = Record<Program, string>;

/** Every program the stack needs, or an error that names each missing one and what installs it. */
export function requirePrograms(): Programs {
  const programs: Program[] = ["bun", "redis-server", "redis-cli", "nginx", "bash"];
  const found = Object.fromEntries(programs.map((p) => [p, findProgram(p)])) as Record<Program, string | undefined>;
  const missing = programs.filter((p) => !found[p]);
  if (missing.length > 0) {
    throw new Error(
      `missing prerequisites (run scripts/setup.sh, or install them yourself):\n` +
        missing.map((p) => `  ${p}: ${INSTALL_HINT[p]}`).join("\n"),
    );
  }
  return found as Programs;
}

/**
 * A PATH under which start_redis_with_recovery.sh finds redis-server, redis-cli and bun by name, even
 * if they were found outside the caller's PATH. The bun running this may not be called `bun` (npm's
 * package installs `bun.exe` behind a `bun` link elsewhere); then a link named `bun` is made in
 * `shimDir`.
 */
export function pathFor(programs: Programs, shimDir: string): string {
  const dirs = [programs["redis-server"], programs["redis-cli"]].map((p) => dirname(p));
  if (basename(programs.bun) === "bun") {
    dirs.push(dirname(programs.bun));
  } else {
    mkdirSync(shimDir, { recursive: true });
    rmSync(join(shimDir, "bun"), { force: true });
    symlinkSync(programs.bun, join(shimDir, "bun"));
    dirs.unshift(shimDir);
  }
  const current = (process.env.PATH ?? "").split(":").filter(Boolean);
  return [...new Set([...dirs, ...current])].join(":");
}
