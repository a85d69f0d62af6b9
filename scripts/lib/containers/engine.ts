/**
 * The Docker engine and the compose command: what is there, or else Debian's docker.io and
 * docker-compose installed as root, and a dockerd started in the background.
 */
import { existsSync, openSync, readFileSync } from "node:fs";
import { aptInstall, ContainerSetupError, isRoot, mustRun, run, sayOnStderr, type Say } from "./commands";

/** A started dockerd answers within seconds; this much means it will not. */
const ENGINE_START_TIMEOUT_MS = 60_000;
const ENGINE_POLL_INTERVAL_MS = 250;
/** Where a dockerd started here writes its output. */
export const DOCKERD_LOG = "/var/log/dockerd.log";

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
