/**
 * What the container stack (compose.yaml) needs on this machine: a Docker engine, a compose command,
 * and the base images the Dockerfiles start from. `bun run compose:up`, `compose:down` and the
 * container tests all go through here.
 *
 * On a Docker host it uses what is there: `docker compose`, or else `docker-compose`, and the real
 * base images (pulled if need be). What is missing it sets up, as root with apt-get: Debian's docker.io
 * (and docker-compose when the docker CLI has no compose plugin), a dockerd started in the background,
 * and stand-ins for base images that cannot be pulled, built from Debian packages
 * (scripts/containers/). What it cannot set up, it names, in a ContainerSetupError.
 */
import {
  copyFileSync,
  existsSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { REPO_ROOT } from "../../common/src/config";
import { COMPOSE_SECRET_MAKER } from "../../deploy/deployments";

/** Thrown when the engine, compose or a base image cannot be had; the message says why and what to do. */
export class ContainerSetupError extends Error {
  override name = "ContainerSetupError";
}

export type Say = (line: string) => void;
export const sayOnStderr: Say = (line) => console.error(`[containers] ${line}`);

/** A started dockerd answers within seconds; this much means it will not. */
const ENGINE_START_TIMEOUT_MS = 60_000;
const ENGINE_POLL_INTERVAL_MS = 250;
/** Where a dockerd started here writes its output. */
export const DOCKERD_LOG = "/var/log/dockerd.log";
/** A real pull of a base image on a slow line; a registry that cannot be reached fails at once. */
const PULL_TIMEOUT_MS = 10 * 60_000;

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

const isRoot = () => process.getuid?.() === 0;
const hasAptGet = () => Bun.which("apt-get") !== null;

async function aptInstall(packages: string[], say: Say): Promise<void> {
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

// ---- the engine -----------------------------------------------------------------------------------

const engineAnswers = async () => (await run(["docker", "info", "--format", "{{.ServerVersion}}"])).code === 0;

/**
 * A Docker engine that answers `docker info`. Installs Debian's docker.io if there is no docker at
 * all, and starts dockerd if it is not running: with systemd if the machine runs it, otherwise in
 * the background, its output in DOCKERD_LOG. The dockerd keeps running afterwards, as a system
 * service would.
 */
export async function ensureEngine(say: Say = sayOnStderr): Promise<void> {
  if (await engineAnswers()) return;
  if (!Bun.which("docker") || !findDockerd()) await aptInstall(["docker.io"], say);
  if (await engineAnswers()) return;
  if (!isRoot()) {
    const why = (await run(["docker", "info"])).stderr.trim().split("\n").at(-1) ?? "";
    throw new ContainerSetupError(
      `the Docker engine does not answer (${why}); start it (e.g. sudo systemctl start docker) or run this as root`,
    );
  }
  if (existsSync("/run/systemd/system")) {
    say("starting the Docker engine: systemctl start docker");
    await mustRun(["systemctl", "start", "docker"]);
  } else {
    say(`starting the Docker engine: dockerd in the background (its output in ${DOCKERD_LOG})`);
    const log = openSync(DOCKERD_LOG, "a");
    const dockerd = Bun.spawn([findDockerd()!], { stdin: "ignore", stdout: log, stderr: log, detached: true });
    dockerd.unref();
  }
  const deadline = Date.now() + ENGINE_START_TIMEOUT_MS;
  while (!(await engineAnswers())) {
    if (Date.now() > deadline) {
      const tail = existsSync(DOCKERD_LOG)
        ? readFileSync(DOCKERD_LOG, "utf8").trim().split("\n").slice(-10).join("\n")
        : "";
      throw new ContainerSetupError(
        `dockerd did not answer within ${ENGINE_START_TIMEOUT_MS / 1000} s; the end of ${DOCKERD_LOG}:\n${tail}`,
      );
    }
    await Bun.sleep(ENGINE_POLL_INTERVAL_MS);
  }
}

function findDockerd(): string | undefined {
  return Bun.which("dockerd") ?? ["/usr/sbin/dockerd", "/usr/bin/dockerd"].find((path) => existsSync(path));
}

/** `docker compose` if the docker CLI has the plugin, else `docker-compose` (installed with apt if missing). */
export async function findCompose(say: Say = sayOnStderr): Promise<string[]> {
  if ((await run(["docker", "compose", "version"])).code === 0) return ["docker", "compose"];
  if ((await run(["docker-compose", "version"])).code === 0) return ["docker-compose"];
  await aptInstall(["docker-compose"], say);
  return ["docker-compose"];
}

// ---- base images ----------------------------------------------------------------------------------

/** The build argument each Dockerfile takes its base image from, its default, and the stand-in. */
export type BaseImage = {
  arg: "BUN_IMAGE" | "REDIS_IMAGE" | "NGINX_IMAGE";
  image: string;
  standIn: string;
  dockerfile: string;
};

const STAND_INS = join(REPO_ROOT, "scripts", "containers");
/** Debian as debootstrap builds it from Debian packages: the base of every stand-in. */
export const DEBIAN_STAND_IN = "checkout-base/debian:bookworm";
const DEBIAN_SUITE = "bookworm";

/** The defaults are the ARG defaults of Dockerfile, redis/Dockerfile and gateway/Dockerfile, and compose.yaml's. */
export const BASE_IMAGES: readonly BaseImage[] = [
  // Tagged with the host's bun version, which it copies: another bun on the host builds another image.
  { arg: "BUN_IMAGE", image: "oven/bun:1", standIn: `checkout-base/bun:${Bun.version}`, dockerfile: "bun.Dockerfile" },
  { arg: "REDIS_IMAGE", image: "redis:7", standIn: "checkout-base/redis:bookworm", dockerfile: "redis.Dockerfile" },
  { arg: "NGINX_IMAGE", image: "nginx:1.27", standIn: "checkout-base/nginx:bookworm", dockerfile: "nginx.Dockerfile" },
];

export const imageExists = async (image: string) => (await run(["docker", "image", "inspect", image])).code === 0;

/**
 * The image for each base-image build argument: one named in the environment (BUN_IMAGE=...), the
 * real image if it is here or can be pulled, or else its stand-in, built if it is not here yet.
 */
export async function ensureBaseImages(say: Say = sayOnStderr): Promise<Record<BaseImage["arg"], string>> {
  const chosen = {} as Record<BaseImage["arg"], string>;
  for (const base of BASE_IMAGES) {
    const named = process.env[base.arg];
    if (named) {
      chosen[base.arg] = named;
    } else if ((await imageExists(base.image)) || (await pulled(base.image, say))) {
      chosen[base.arg] = base.image;
    } else {
      if (!(await imageExists(base.standIn))) await buildStandIn(base, say);
      chosen[base.arg] = base.standIn;
    }
  }
  return chosen;
}

async function pulled(image: string, say: Say): Promise<boolean> {
  const result = await run(["docker", "pull", "--quiet", image], { timeoutMs: PULL_TIMEOUT_MS });
  if (result.code === 0) return true;
  say(
    `${image} cannot be pulled (${result.stderr.trim().split("\n").at(-1)}); using a stand-in built from Debian packages`,
  );
  return false;
}

async function buildStandIn(base: BaseImage, say: Say): Promise<void> {
  if (!(await imageExists(DEBIAN_STAND_IN))) await buildDebian(say);
  const context = mkdtempSync(join(tmpdir(), "checkout-base-"));
  try {
    // The bun running this script is the one the host runs (npm's package names it bun.exe).
    if (base.arg === "BUN_IMAGE") copyFileSync(process.execPath, join(context, "bun"));
    say(`building ${base.standIn} (${base.dockerfile}) in place of ${base.image}`);
    await mustRun([
      "docker",
      "build",
      "--quiet",
      "--tag",
      base.standIn,
      "--build-arg",
      `DEBIAN_IMAGE=${DEBIAN_STAND_IN}`,
      "--file",
      join(STAND_INS, base.dockerfile),
      context,
    ]);
  } finally {
    rmSync(context, { recursive: true, force: true });
  }
}

/** Debian bookworm from Debian's packages: debootstrap's minimal variant, imported as an image. */
async function buildDebian(say: Say): Promise<void> {
  if (!isRoot()) throw new ContainerSetupError(`${DEBIAN_STAND_IN} must be built, and debootstrap needs root`);
  if (!Bun.which("debootstrap") && !existsSync("/usr/sbin/debootstrap")) await aptInstall(["debootstrap"], say);
  const { mirror, security } = debianMirrors();
  const root = mkdtempSync(join(tmpdir(), "checkout-debian-"));
  try {
    say(`building ${DEBIAN_STAND_IN}: debootstrap --variant=minbase ${DEBIAN_SUITE} from ${mirror}`);
    await mustRun(["debootstrap", "--variant=minbase", DEBIAN_SUITE, root, mirror]);
    // The same suites the host's apt uses, security updates included; no downloaded packages kept.
    writeFileSync(
      join(root, "etc/apt/sources.list"),
      [
        `deb ${mirror} ${DEBIAN_SUITE} main`,
        `deb ${mirror} ${DEBIAN_SUITE}-updates main`,
        `deb ${security} ${DEBIAN_SUITE}-security main`,
        "",
      ].join("\n"),
    );
    for (const dir of ["var/cache/apt/archives", "var/lib/apt/lists"]) {
      for (const entry of readdirSync(join(root, dir))) {
        if (entry !== "partial" && entry !== "lock") rmSync(join(root, dir, entry), { recursive: true, force: true });
      }
    }
    await mustRun([
      "bash",
      "-o",
      "pipefail",
      "-c",
      `tar -C "$1" -c . | docker import - "$2"`,
      "import",
      root,
      DEBIAN_STAND_IN,
    ]);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

/** The Debian mirrors the host's apt is configured with (deb822 or one-line sources), or Debian's own. */
export function debianMirrors(sourcesDir = "/etc/apt"): { mirror: string; security: string } {
  const texts: string[] = [];
  const read = (path: string) => existsSync(path) && texts.push(readFileSync(path, "utf8"));
  read(join(sourcesDir, "sources.list"));
  const listDir = join(sourcesDir, "sources.list.d");
  if (existsSync(listDir)) for (const entry of readdirSync(listDir).sort()) read(join(listDir, entry));
  const uris = texts
    .join("\n")
    .split("\n")
    .flatMap((line) => {
      const deb822 = /^URIs:\s*(.+)$/i.exec(line.trim());
      if (deb822) return deb822[1]!.split(/\s+/);
      const oneLine = /^deb\s+(?:\[[^\]]*\]\s+)?(\S+)/.exec(line.trim());
      return oneLine ? [oneLine[1]!] : [];
    })
    .filter((uri) => /^https?:\/\//.test(uri))
    .map((uri) => uri.replace(/\/+$/, ""));
  return {
    mirror: uris.find((uri) => uri.endsWith("/debian")) ?? "http://deb.debian.org/debian",
    security: uris.find((uri) => uri.endsWith("/debian-security")) ?? "http://deb.debian.org/debian-security",
  };
}

// ---- the build's trust --------------------------------------------------------------------------

/** Where the Dockerfiles look for extra CA certificates (a build-context file; .gitignore'd). */
export const BUILD_CA = join(REPO_ROOT, "build-ca.pem");

/**
 * The builds trust what the host's bun trusts: `bun install` inside an image reaches the npm registry,
 * which behind a TLS-intercepting proxy presents the proxy's certificate. NODE_EXTRA_CA_CERTS names
 * that CA on such a machine; its bundle is copied to BUILD_CA, and removed when it is not set.
 */
export function writeBuildCa(): void {
  const extra = process.env.NODE_EXTRA_CA_CERTS;
  if (extra && existsSync(extra)) {
    const bundle = readFileSync(extra);
    if (!existsSync(BUILD_CA) || !readFileSync(BUILD_CA).equals(bundle)) writeFileSync(BUILD_CA, bundle);
  } else {
    rmSync(BUILD_CA, { force: true });
  }
}

// ---- compose ------------------------------------------------------------------------------------

/** Everything needed to run compose.yaml here: the compose command and the environment it needs. */
export type ComposeContext = { command: string[]; env: Record<string, string> };

/** Engine, compose, base images and the build's trust: each set up if missing. */
export async function prepareContainers(say: Say = sayOnStderr): Promise<ComposeContext> {
  await ensureEngine(say);
  const command = await findCompose(say);
  const images = await ensureBaseImages(say);
  writeBuildCa();
  return { command, env: images };
}

/** The compose file of the repository (the local stack's topology in containers). */
export const COMPOSE_FILE = "compose.yaml";

/**
 * A compose command for one project (`-p`: docker-compose 1.x rejects compose.yaml's `name:` key), on
 * `files` (compose.yaml unless told otherwise; later files override earlier ones).
 */
export function composeArgs(
  context: ComposeContext,
  project: string,
  args: string[],
  files: string[] = [COMPOSE_FILE],
): string[] {
  return [...context.command, "--project-name", project, ...files.flatMap((f) => ["--file", f]), ...args];
}

export type ContainerState = {
  id: string;
  service: string;
  status: string;
  health: string | undefined;
  /** The host's pid of the container's main process (0 while it is not running). */
  pid: number;
  /** When its main process last started: changes when Docker restarts the container. */
  startedAt: string;
};

/** Every container of a compose project, as the engine sees it (labels set by both compose flavours). */
export async function projectContainers(project: string): Promise<ContainerState[]> {
  const ids = (
    await mustRun(["docker", "ps", "--all", "--quiet", "--filter", `label=com.docker.compose.project=${project}`])
  )
    .split("\n")
    .filter(Boolean);
  if (ids.length === 0) return [];
  const format =
    '{{.Id}} {{index .Config.Labels "com.docker.compose.service"}} {{.State.Status}} {{.State.Pid}} {{.State.StartedAt}} {{if .State.Health}}{{.State.Health.Status}}{{end}}';
  // A container removed meanwhile makes inspect fail for it alone; the others are still listed.
  const lines = (await run(["docker", "inspect", "--format", format, ...ids])).stdout.split("\n").filter(Boolean);
  return lines.map((line) => {
    const [id, service, status, pid, startedAt, health] = line.split(" ");
    return {
      id: id!,
      service: service!,
      status: status!,
      pid: Number(pid),
      startedAt: startedAt!,
      health: health || undefined,
    };
  });
}

/**
 * Resolves once every one of `services` has a running container whose health check passes; fails
 * after `timeoutMs`, naming the containers that are not healthy and showing their last output.
 */
export async function waitForHealthy(
  project: string,
  services: readonly string[],
  timeoutMs: number,
  pollMs = 250,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const containers = await projectContainers(project);
    const healthy = new Set(
      containers.filter((c) => c.status === "running" && c.health === "healthy").map((c) => c.service),
    );
    const waiting = services.filter((s) => !healthy.has(s));
    if (waiting.length === 0) return;
    if (Date.now() > deadline) {
      const details = await Promise.all(
        waiting.map(async (service) => {
          const c = containers.find((x) => x.service === service);
          if (!c) return `${service}: no container`;
          const logs = await run(["docker", "logs", "--tail", "15", c.id]);
          const lines = `${logs.stdout}${logs.stderr}`
            .trim()
            .split("\n")
            .map((l) => `  | ${l}`)
            .join("\n");
          return `${service}: ${c.status}${c.health ? `, ${c.health}` : ""}\n${lines}`;
        }),
      );
      throw new Error(`not healthy within ${timeoutMs / 1000} s:\n${details.join("\n")}`);
    }
    await Bun.sleep(pollMs);
  }
}

/** compose.yaml's long-running services, each with a health check (the one-shot secret maker left out). */
export async function composeServices(
  context: ComposeContext,
  project: string,
  files: string[] = [COMPOSE_FILE],
): Promise<string[]> {
  const all = (await mustRun(composeArgs(context, project, ["config", "--services"], files), { env: context.env }))
    .split("\n")
    .filter(Boolean);
  return all.filter((service) => service !== COMPOSE_SECRET_MAKER);
}
