/**
 * The base images the Dockerfiles start from: one named in the environment, the real image (pulled if
 * need be), or else a stand-in built from Debian packages (scripts/containers/), on a Debian image
 * that debootstrap builds from the mirrors the host's apt uses.
 */
import { copyFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { REPO_ROOT } from "../../../common/src/config";
import { aptInstall, ContainerSetupError, isRoot, mustRun, run, sayOnStderr, type Say } from "./commands";

/** A real pull of a base image on a slow line; a registry that cannot be reached fails at once. */
const PULL_TIMEOUT_MS = 10 * 60_000;

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
