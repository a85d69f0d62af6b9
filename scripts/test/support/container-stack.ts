/**
 * The system in containers, for a test: compose.yaml run as a compose project of its own (its own
 * network, volumes and log folder), with the gateway and the three Redises published on free ports of
 * 127.0.0.1, through which alone the test talks to it. Containers are killed and started again through
 * the Docker engine, as an operator (or a grader) would.
 *
 * Or deploy/k8s/ (`startContainerStack("kubernetes")`): what its manifests declare, translated into a
 * compose file of its own (scripts/lib/kubernetes.ts) and run the same way, each pod a container
 * (`order-1`, `order-2`, …, `redis-order`, `gateway-1`, …), the claims of the service logs in one host
 * folder, the Redis data claims in volumes.
 *
 *   const shop = await startContainerStack();
 *   await shop.crash("stock-1");                  // SIGKILL of its main process; `restart: always` brings it back
 *   await shop.dockerKill("stock-1");             // `docker kill`: stays down until...
 *   await shop.dockerStart("stock-1");            // ...`docker start`
 *   await shop.stop();                            // compose down -v, the log folder removed
 *
 * The engine, compose and the base images are set up if missing (scripts/lib/containers.ts); if they
 * cannot be, startContainerStack throws saying why, and the test fails.
 */
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { DEFAULT_PORTS, REPO_ROOT, SERVICES, type ServiceName } from "../../../common/src/config";
import {
  COMPOSE_FILE,
  composeArgs,
  composeServices,
  mustRun,
  prepareContainers,
  projectContainers,
  run,
  waitForHealthy,
  type ComposeContext,
  type ContainerState,
} from "../../lib/containers";
import { claimName, composeOf, isWorkload, podNames, readManifests, writeGeneratedFiles } from "../../lib/kubernetes";
import { findFreePortOffset } from "../../lib/ports";
import { COMPOSE_REPLICAS, KUBERNETES_CLAIMS, KUBERNETES_SECRET } from "../../../deploy/deployments";
import { GATEWAY_NAME, LOOPBACK, redisName, topology } from "../../../deploy/topology";

/** Building the service images from cold takes a minute or two on the 2-core machine; starting, seconds. */
export const CONTAINER_STACK_START_TIMEOUT_MS = 10 * 60_000;
/** A container that was killed is back and healthy well within this (a Redis replays its log first). */
const HEALTHY_TIMEOUT_MS = 180_000;
const POLL_MS = 100;
/**
 * The tag of the images a test builds (compose.yaml's CHECKOUT_IMAGE_TAG): one per checkout of the
 * repository, so that tests of two checkouts running at once never run each other's images.
 */
const IMAGE_TAG = `test-${Bun.hash(REPO_ROOT).toString(16)}`;
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
   * The container's main process gets SIGKILL; resolves once `restart: always` has it running and
   * healthy again, with the moment (performance.now()) it was seen running again.
   */
  crash(service: string): Promise<Restarted>;
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

/** What runs: compose.yaml, or what deploy/k8s/ declares. */
export type ContainerDeployment = "compose" | "kubernetes";

export async function startContainerStack(
  deployment: ContainerDeployment = "compose",
  say: (line: string) => void = (line) => console.error(`[containers] ${line}`),
): Promise<ContainerStack> {
  const context = await prepareContainers(say);
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOnFreePorts(context, deployment);
    } catch (error) {
      // Another stack (another checkout's test) may take the ports we found free before ours binds them.
      if (!(error instanceof PortsTakenError) || attempt >= START_ATTEMPTS) throw error;
      say(`ports taken meanwhile (${error.message}); starting again on others`);
    }
  }
}

/** Tries at starting a stack whose ports another one took first. */
const START_ATTEMPTS = 3;
class PortsTakenError extends Error {}

async function startOnFreePorts(context: ComposeContext, deployment: ContainerDeployment): Promise<ContainerStack> {
  const t = topology(COMPOSE_REPLICAS, await findFreePortOffset(COMPOSE_REPLICAS));
  const project = `checkout-test-${process.pid}-${Math.floor(Math.random() * 1e6)}`;
  const scratch = mkdtempSync(join(tmpdir(), "checkout-containers-"));
  const logDir = join(scratch, "logging");
  const env = {
    ...context.env,
    CHECKOUT_IMAGE_TAG: IMAGE_TAG,
    CHECKOUT_GATEWAY_PORT: String(t.ports.gateway),
    CHECKOUT_LOG_DIR: logDir,
  };
  // The Redis ports are published for the test only (checks beneath the API), in a file of its own.
  const override = join(scratch, "compose.test.yaml");
  const containerRedisPort = (s: ServiceName) => topology(COMPOSE_REPLICAS).ports.redis[s];
  writeFileSync(
    override,
    JSON.stringify({
      services: Object.fromEntries(
        SERVICES.map((s) => [redisName(s), { ports: [`${LOOPBACK}:${t.ports.redis[s]}:${containerRedisPort(s)}`] }]),
      ),
    }),
  );
  let files = [COMPOSE_FILE, override];
  let gatewayContainer = GATEWAY_NAME;
  if (deployment === "kubernetes") {
    const kubernetes = join(scratch, "kubernetes.compose.json");
    gatewayContainer = writeKubernetesCompose(kubernetes, scratch, logDir, t.ports.gateway);
    files = [kubernetes, override];
  }
  const compose = (args: string[], composeFiles = files) =>
    run(composeArgs(context, project, args, composeFiles), { env });

  const stack = new Containers(
    context,
    project,
    files,
    scratch,
    logDir,
    env,
    gatewayContainer,
    t.ports.gateway,
    t.ports.redis,
  );
  try {
    mkdirSync(logDir, { recursive: true });
    // The manifests name images; compose.yaml says how to build them, under this checkout's tag.
    const built =
      deployment === "kubernetes" ? await compose(["build"], [COMPOSE_FILE]) : { code: 0, stdout: "", stderr: "" };
    if (built.code !== 0)
      throw new Error(
        `compose build failed (exit ${built.code}):\n${(built.stdout + built.stderr).trim().split("\n").slice(-30).join("\n")}`,
      );
    const up = await compose(deployment === "kubernetes" ? ["up", "--detach"] : ["up", "--detach", "--build"]);
    if (up.code !== 0)
      throw new Error(
        `compose up failed (exit ${up.code}):\n${(up.stdout + up.stderr).trim().split("\n").slice(-30).join("\n")}`,
      );
    stack.services = await composeServices(context, project, files);
    await stack.waitHealthy();
  } catch (error) {
    const lines = stack.output();
    await stack.stop();
    const message = (error as Error).message;
    if (/address already in use|port is already allocated/.test(message))
      throw new PortsTakenError(message.split("\n").find((l) => /in use|allocated/.test(l)));
    throw new Error(`the container stack did not start: ${message}\n${lines.join("\n")}`, { cause: error });
  }
  return stack;
}

/**
 * deploy/k8s/ as a compose file at `path`: the Secret with a fresh credential and the ConfigMap as
 * folders in `scratch`, the service logs' claims in `logDir`, the first gateway pod on `gatewayPort`.
 * Returns that pod's container name.
 */
function writeKubernetesCompose(path: string, scratch: string, logDir: string, gatewayPort: number): string {
  const { objects } = readManifests();
  const secret = objects.find((o) => o.kind === "Secret" && o.metadata.name === KUBERNETES_SECRET.name);
  if (!secret) throw new Error(`deploy/k8s/ has no Secret ${KUBERNETES_SECRET.name}`);
  secret.stringData = { [KUBERNETES_SECRET.key]: randomBytes(32).toString("hex") };
  const filesDir = join(scratch, "files");
  writeGeneratedFiles(objects, filesDir, (file, text) => {
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, text);
  });
  const gateway = objects.filter(isWorkload).find((w) => w.metadata.name === GATEWAY_NAME);
  if (!gateway) throw new Error("deploy/k8s/ has no gateway Deployment");
  const gatewayPod = podNames(gateway)[0]!;
  const logClaims = SERVICES.map((s) => claimName(KUBERNETES_CLAIMS.log, redisName(s)));
  const file = composeOf(objects, {
    imageTag: IMAGE_TAG,
    filesDir,
    claimFolders: Object.fromEntries(logClaims.map((claim) => [claim, logDir])),
    publish: { [gatewayPod]: [[gatewayPort, DEFAULT_PORTS.gateway]] },
  });
  writeFileSync(path, JSON.stringify(file, null, 2));
  return gatewayPod;
}

class Containers implements ContainerStack {
  services: string[] = [];
  private readonly occupants: string[] = [];
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

  async crash(service: string): Promise<Restarted> {
    const before = await this.container(service);
    if (before.status !== "running") throw new Error(`${service} is ${before.status}, not running`);
    process.kill(before.pid, "SIGKILL");
    await this.until(`${service} restarted by Docker`, async () => {
      const now = await this.container(service);
      return now.startedAt !== before.startedAt && now.status === "running";
    });
    const runningAgainAt = performance.now();
    await this.waitHealthy([service]);
    return { runningAgainAt };
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
      process.kill(pid, "SIGKILL");
    } else {
      await mustRun(["docker", "kill", id]);
    }
    await this.until(`${name} stopped`, async () => (await this.container(name)).status !== "running");
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
    await waitForHealthy(this.project, services, HEALTHY_TIMEOUT_MS, POLL_MS);
  }

  private async until(what: string, check: () => Promise<boolean>): Promise<void> {
    const deadline = Date.now() + HEALTHY_TIMEOUT_MS;
    while (!(await check())) {
      if (Date.now() > deadline) throw new Error(`${what}: not within ${HEALTHY_TIMEOUT_MS / 1000} s`);
      await Bun.sleep(POLL_MS);
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
    // Not compose's: compose down would not remove the network while they are on it.
    if (this.occupants.length > 0) await run(["docker", "rm", "--force", ...this.occupants.splice(0)]);
    await run(
      composeArgs(this.context, this.project, ["down", "--volumes", "--remove-orphans", "--timeout", "5"], this.files),
      { env: this.env },
    );
    rmSync(this.scratch, { recursive: true, force: true });
  }
}
