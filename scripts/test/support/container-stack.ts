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
 *   const crash = await shop.readyCrash("stock-1"); // then, under load:
 *   await crash();                                // SIGKILL of its main process; `restart: always` brings it back
 *   await shop.dockerKill("stock-1");             // `docker kill`: stays down until...
 *   await shop.dockerStart("stock-1");            // ...`docker start`
 *   await shop.stop();                            // compose down -v, the log folder removed
 *
 * The engine, compose and the base images are set up if missing (scripts/lib/containers.ts); if they
 * cannot be, startContainerStack throws saying why, and the test fails.
 */
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { DEFAULT_PORTS, SERVICES, type ServiceName } from "../../../common/src/config";
import {
  COMPOSE_FILE,
  composeArgs,
  composeServices,
  prepareContainers,
  run,
  type ComposeContext,
} from "../../lib/containers";
import { claimName, composeOf, isWorkload, podNames, readManifests, writeGeneratedFiles } from "../../lib/kubernetes";
import { findFreePortOffset } from "../../lib/ports";
import { COMPOSE_REPLICAS, KUBERNETES_CLAIMS, KUBERNETES_SECRET } from "../../../deploy/deployments";
import { GATEWAY_NAME, LOOPBACK, redisName, topology } from "../../../deploy/topology";
import { Containers, IMAGE_TAG, type ContainerStack } from "./container-stack-handle";

export type { ContainerStack, Restarted } from "./container-stack-handle";

/** Building the service images from cold takes a minute or two on the 2-core machine; starting, seconds. */
export const CONTAINER_STACK_START_TIMEOUT_MS = 10 * 60_000;

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
