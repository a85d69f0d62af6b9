/** A compose project of compose.yaml (or another compose file): its command line, its containers and their health. */
import { COMPOSE_SECRET_MAKER } from "../../../deploy/deployments";
import { mustRun, run } from "./commands";
import { containerEvents } from "./events";

/** Everything needed to run compose.yaml here: the compose command and the environment it needs. */
export type ComposeContext = { command: string[]; env: Record<string, string> };

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
  const format = [
    "{{.Id}}",
    '{{index .Config.Labels "com.docker.compose.service"}}',
    "{{.State.Status}}",
    "{{.State.Pid}}",
    "{{.State.StartedAt}}",
    "{{if .State.Health}}{{.State.Health.Status}}{{end}}",
  ].join(" ");
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
export async function waitForHealthy(project: string, services: readonly string[], timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  // Opened before the first look: whatever changes after it is announced.
  const events = containerEvents(project);
  try {
    for (;;) {
      const containers = await projectContainers(project);
      const healthy = new Set(
        containers.filter((c) => c.status === "running" && c.health === "healthy").map((c) => c.service),
      );
      const waiting = services.filter((s) => !healthy.has(s));
      if (waiting.length === 0) return;
      if (Date.now() > deadline)
        throw new Error(`not healthy within ${timeoutMs / 1000} s:\n${await describe(containers, waiting)}`);
      // A container that starts, dies or changes health announces it; nothing else changes the answer.
      await events.next(() => true, deadline - Date.now());
    }
  } finally {
    events.close();
  }
}

/** How each container named is, with the last lines it printed. */
async function describe(containers: ContainerState[], services: readonly string[]): Promise<string> {
  const details = await Promise.all(
    services.map(async (service) => {
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
  return details.join("\n");
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
