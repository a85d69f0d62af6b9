/**
 * The handle a test holds on a running container stack (started by container-stack.ts): its
 * containers killed, started, wiped and recreated through the Docker engine, and waited for until
 * healthy again.
 */
import { rmSync } from "node:fs";
import { REPO_ROOT, type ServiceName } from "../../../common/src/config";
import {
  composeArgs,
  containerEvents,
  type ContainerEvents,
  mustRun,
  projectContainers,
  run,
  waitForHealthy,
  type ComposeContext,
  type ContainerState,
} from "../../lib/containers";
import { LOOPBACK, redisName } from "../../../deploy/topology";

/** A container that was killed is back and healthy well within this (a Redis replays its log first). */
const HEALTHY_TIMEOUT_MS = 180_000;
/**
 * The tag of the images a test builds (compose.yaml's CHECKOUT_IMAGE_TAG): one per checkout of the
 * repository, so that tests of two checkouts running at once never run each other's images.
 */
export const IMAGE_TAG = `test-${Bun.hash(REPO_ROOT).toString(16)}`;
/** compose.yaml's image of the services. */
const SERVICE_IMAGE = `checkout-service:${IMAGE_TAG}`;
/** Output lines of each container shown when something fails. */
const SHOWN_OUTPUT_LINES = 15;

/** When a container that was killed was running again (performance.now()): before its health check passed. */
export type Restarted = { runningAgainAt: number };

export type ContainerStack = {
  readonly project: string;
  readonly gatewayUrl: string;
  /** The container whose port the test's gateway URL is (for Kubernetes, the first gateway pod). */
  readonly gatewayContainer: string;
  /** The host folder every container's logging/ is (CHECKOUT_LOG_DIR). */
  readonly logDir: string;
  readonly redisPorts: Readonly<Record<ServiceName, number>>;
  /** compose.yaml's services: the containers' names. */
  readonly services: readonly string[];
  container(service: string): Promise<ContainerState>;
  /**
   * Readies the crash of a container: finds its main process and starts following the engine's
   * events, so that the crash itself asks the engine nothing (each question takes CPU from the
   * containers under test). The crash SIGKILLs that process and resolves once `restart: always` has
   * the container running and healthy again, with the moment (performance.now()) it ran again.
   */
  readyCrash(service: string): Promise<() => Promise<Restarted>>;
  /** `docker kill`: it stays down (Docker does not restart a container it was told to kill). */
  dockerKill(service: string): Promise<void>;
  /** `docker start`; resolves once it is healthy, with the moment it was running again. */
  dockerStart(service: string): Promise<Restarted>;
  /**
   * A Redis killed (`how`), its container and data volume removed, and the container created again by
   * compose: it rebuilds its data from the service log alone. Resolves once it is healthy.
   */
  wipeRedis(service: ServiceName, how: "crash" | "docker kill"): Promise<void>;
  /**
   * The container killed and removed, and created again by compose with the same volumes: a pod
   * rescheduled after its node was lost, its claims on network storage. Resolves once it is healthy.
   */
  recreate(service: string): Promise<Restarted>;
  /** The container's address on the project's network. */
  address(service: string): Promise<string>;
  /**
   * Starts a bare container on the project's network (removed by stop()): it takes the lowest free
   * address, as any container started there would, e.g. one that a killed replica had.
   */
  occupyFreeAddress(): Promise<string>;
  /** Resolves once every container (or the ones named) is running and healthy. */
  waitHealthy(services?: readonly string[]): Promise<void>;
  /** The last lines every container printed. */
  output(): string[];
  /** compose down -v, and the log folder removed. */
  stop(): Promise<void>;
};

export class Containers implements ContainerStack {
  services: string[] = [];
  private readonly occupants: string[] = [];
  /** Event streams of crashes readied and not run (closed by stop()). */
  private readonly following = new Set<ContainerEvents>();
  readonly gatewayUrl: string;

  constructor(
    private readonly context: ComposeContext,
    readonly project: string,
    private readonly files: string[],
    private readonly scratch: string,
    readonly logDir: string,
    private readonly env: Record<string, string>,
    readonly gatewayContainer: string,
    gatewayPort: number,
    readonly redisPorts: Record<ServiceName, number>,
  ) {
    this.gatewayUrl = `http://${LOOPBACK}:${gatewayPort}`;
  }

  private compose(args: string[]): Promise<string> {
    return mustRun(composeArgs(this.context, this.project, args, this.files), { env: this.env });
  }

  async container(service: string): Promise<ContainerState> {
    const found = (await projectContainers(this.project)).find((c) => c.service === service);
    if (!found) throw new Error(`${this.project} has no container for ${service}`);
    return found;
  }

  async readyCrash(service: string): Promise<() => Promise<Restarted>> {
    const { status, pid } = await this.container(service);
    if (status !== "running") throw new Error(`${service} is ${status}, not running`);
    const events = containerEvents(this.project);
    this.following.add(events);
    const announced = async (action: string) => {
      const seen = await events.next((e) => e.service === service && e.action === action, HEALTHY_TIMEOUT_MS);
      if (!seen) throw new Error(`${service}: no ${action} within ${HEALTHY_TIMEOUT_MS / 1000} s of its crash`);
    };
    return async () => {
      try {
        process.kill(pid, "SIGKILL");
        await announced("start");
        const runningAgainAt = performance.now();
        // A restarted container's health starts anew: the first check to pass after the start announces it.
        await announced("health_status: healthy");
        return { runningAgainAt };
      } finally {
        events.close();
        this.following.delete(events);
      }
    };
  }

  async dockerKill(service: string): Promise<void> {
    await mustRun(["docker", "kill", (await this.container(service)).id]);
  }

  async dockerStart(service: string): Promise<Restarted> {
    await mustRun(["docker", "start", (await this.container(service)).id]);
    const runningAgainAt = performance.now();
    await this.waitHealthy([service]);
    return { runningAgainAt };
  }

  async wipeRedis(service: ServiceName, how: "crash" | "docker kill"): Promise<void> {
    const name = redisName(service);
    const { id, pid } = await this.container(name);
    if (how === "crash") {
      // Its restart policy would bring it back before the volume could go.
      await mustRun(["docker", "update", "--restart", "no", id]);
      await this.killAndAwait(name, "die", async () => process.kill(pid, "SIGKILL"));
    } else {
      await this.killAndAwait(name, "die", () => mustRun(["docker", "kill", id]));
    }
    const volumes = (
      await mustRun([
        "docker",
        "inspect",
        "--format",
        '{{range .Mounts}}{{if eq .Destination "/data"}}{{.Name}}{{end}}{{end}}',
        id,
      ])
    ).trim();
    if (!volumes) throw new Error(`${name} has no data volume at /data`);
    await mustRun(["docker", "rm", "--force", id]);
    await mustRun(["docker", "volume", "rm", volumes]);
    await this.compose(["up", "--detach", "--no-deps", name]);
    await this.waitHealthy([name]);
  }

  async recreate(service: string): Promise<Restarted> {
    const { id } = await this.container(service);
    await mustRun(["docker", "rm", "--force", id]);
    await this.compose(["up", "--detach", "--no-deps", service]);
    const runningAgainAt = performance.now();
    await this.waitHealthy([service]);
    return { runningAgainAt };
  }

  async address(service: string): Promise<string> {
    const { id } = await this.container(service);
    return (
      await mustRun(["docker", "inspect", "--format", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", id])
    ).trim();
  }

  async occupyFreeAddress(): Promise<string> {
    const { id } = await this.container(this.services[0]!);
    const network = (
      await mustRun([
        "docker",
        "inspect",
        "--format",
        "{{range $name, $_ := .NetworkSettings.Networks}}{{$name}}{{end}}",
        id,
      ])
    ).trim();
    // The service image is here, whichever base image it was built from; it only sleeps.
    const occupant = (
      await mustRun([
        "docker",
        "run",
        "--detach",
        "--network",
        network,
        "--entrypoint",
        "sleep",
        SERVICE_IMAGE,
        "infinity",
      ])
    ).trim();
    this.occupants.push(occupant);
    return (
      await mustRun([
        "docker",
        "inspect",
        "--format",
        "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
        occupant,
      ])
    ).trim();
  }

  async waitHealthy(services: readonly string[] = this.services): Promise<void> {
    await waitForHealthy(this.project, services, HEALTHY_TIMEOUT_MS);
  }

  /** Kills `service` and resolves once the engine announces that it did `action` (`die`, `start`). */
  private async killAndAwait(service: string, action: string, kill: () => Promise<unknown>): Promise<void> {
    const events = containerEvents(this.project);
    try {
      await kill();
      const seen = await events.next((e) => e.service === service && e.action === action, HEALTHY_TIMEOUT_MS);
      if (!seen) throw new Error(`${service}: no ${action} within ${HEALTHY_TIMEOUT_MS / 1000} s of its kill`);
    } finally {
      events.close();
    }
  }

  output(): string[] {
    const ids = Bun.spawnSync([
      "docker",
      "ps",
      "--all",
      "--quiet",
      "--filter",
      `label=com.docker.compose.project=${this.project}`,
    ])
      .stdout.toString()
      .split("\n")
      .filter(Boolean);
    return ids.flatMap((id) => {
      const name = Bun.spawnSync([
        "docker",
        "inspect",
        "--format",
        '{{index .Config.Labels "com.docker.compose.service"}}',
        id,
      ])
        .stdout.toString()
        .trim();
      const logs = Bun.spawnSync(["docker", "logs", "--tail", String(SHOWN_OUTPUT_LINES), id]);
      return `${logs.stdout}${logs.stderr}`
        .trim()
        .split("\n")
        .filter(Boolean)
        .map((line) => `[${name}] ${line}`);
    });
  }

  async stop(): Promise<void> {
    for (const events of this.following) events.close();
    // Not compose's: compose down would not remove the network while they are on it.
    if (this.occupants.length > 0) await run(["docker", "rm", "--force", ...this.occupants.splice(0)]);
    await run(
      composeArgs(this.context, this.project, ["down", "--volumes", "--remove-orphans", "--timeout", "5"], this.files),
      { env: this.env },
    );
    rmSync(this.scratch, { recursive: true, force: true });
  }
}
