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
 *
 * Its parts, in scripts/lib/containers/: commands.ts (running commands, apt-get), engine.ts (the
 * engine and the compose command), base-images.ts (the base images and their stand-ins), compose.ts
 * (a compose project's command line, containers and health), events.ts (their events).
 */
import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { REPO_ROOT } from "../../common/src/config";
import { ensureBaseImages } from "./containers/base-images";
import { sayOnStderr, type Say } from "./containers/commands";
import type { ComposeContext } from "./containers/compose";
export { containerEvents, type ContainerEvent, type ContainerEvents } from "./containers/events";
import { ensureEngine, findCompose } from "./containers/engine";

export { BASE_IMAGES } from "./containers/base-images";
export { ContainerSetupError, mustRun, run, sayOnStderr } from "./containers/commands";
export {
  composeArgs,
  composeServices,
  projectContainers,
  waitForHealthy,
  COMPOSE_FILE,
  type ComposeContext,
  type ContainerState,
} from "./containers/compose";

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

/** Engine, compose, base images and the build's trust: each set up if missing. */
export async function prepareContainers(say: Say = sayOnStderr): Promise<ComposeContext> {
  await ensureEngine(say);
  const command = await findCompose(say);
  const images = await ensureBaseImages(say);
  writeBuildCa();
  return { command, env: images };
}
