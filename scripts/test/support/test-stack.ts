/**
 * One private stack per test file: real Redises, two replicas of every service and nginx, on ports
 * nobody else uses and in a temporary state folder that is removed when it stops. With
 * CHECKOUT_TEST_STACK=containers (scripts/test.ts's containers phase), the same in containers:
 * compose.yaml as a compose project of its own (support/container-stack.ts); with
 * CHECKOUT_TEST_STACK=kubernetes (`bun run k8s:test`), what deploy/k8s/ declares, in containers.
 *
 *   const shop = await startTestStack();
 *   afterAll(() => shop.stop());
 *   await post(`${shop.gatewayUrl}/stock/item/create/5`);
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import type { ServiceName } from "../../../common/src/config";
import { findFreePortOffset } from "../../lib/ports";
import { memoryOutput, startStack, type Stack } from "../../lib/stack";
import { LOOPBACK } from "../../../deploy/topology";
import { CONTAINER_STACK_START_TIMEOUT_MS, startContainerStack } from "./container-stack";

/**
 * How long a test file may take to start its stack: a local one starts in seconds, one in containers
 * builds its images first, on a machine other tests may be loading too.
 */
export const TEST_STACK_START_TIMEOUT_MS = CONTAINER_STACK_START_TIMEOUT_MS;

/** Which stack startTestStack starts: `local` processes (the default), `containers` or `kubernetes`. */
export const TEST_STACK_ENV = "CHECKOUT_TEST_STACK";

/** Two of each: the gateway balances, and a checkout may meet a saga another replica drives. */
export const TEST_REPLICAS = 2;
/** Another file may take the offset we found before our stack binds it; then we look again. */
const START_ATTEMPTS = 3;
/** Output lines of the stack's processes shown when a test file fails to start its stack. */
const SHOWN_OUTPUT_LINES = 40;

export type TestStack = {
  gatewayUrl: string;
  /** The services' log folder, as the host sees it. */
  logDir: string;
  /** A client of a service's own Redis (for checks the public API cannot make); closed by stop(). */
  redis(service: ServiceName): Redis;
  /** The last lines the stack's processes printed. */
  output(): string[];
  /** Stops every process and removes the state folder. */
  stop(): Promise<void>;
};

export async function startTestStack(): Promise<TestStack> {
  const kind = process.env[TEST_STACK_ENV] ?? "local";
  if (kind === "containers" || kind === "kubernetes") {
    const shop = await startContainerStack(kind === "kubernetes" ? "kubernetes" : "compose");
    return withRedisClients({
      gatewayUrl: shop.gatewayUrl,
      logDir: shop.logDir,
      redisPorts: shop.redisPorts,
      output: () => shop.output(),
      stop: () => shop.stop(),
    });
  }
  if (kind !== "local") throw new Error(`${TEST_STACK_ENV} must be local, containers or kubernetes, not ${kind}`);
  return startLocalTestStack();
}

/** A local stack of processes, whatever TEST_STACK_ENV says, with its supervisor for tests that need one. */
export async function startLocalTestStack(): Promise<TestStack & { stack: Stack }> {
  const output = memoryOutput();
  const stateDir = mkdtempSync(join(tmpdir(), "checkout-e2e-"));
  let stack: Stack | undefined;
  for (let attempt = 1; !stack; attempt++) {
    try {
      stack = await startStack({
        replicas: TEST_REPLICAS,
        portOffset: await findFreePortOffset(TEST_REPLICAS),
        output,
        stateDir,
      });
    } catch (err) {
      const portTaken = err instanceof Error && err.message.startsWith("ports already in use");
      if (portTaken && attempt < START_ATTEMPTS) continue;
      rmSync(stateDir, { recursive: true, force: true });
      const lines = output.lines().slice(-SHOWN_OUTPUT_LINES);
      throw new Error(`the test stack did not start: ${(err as Error).message}\n${lines.join("\n")}`, { cause: err });
    }
  }
  const started = stack;
  const shop = withRedisClients({
    gatewayUrl: started.gatewayUrl,
    logDir: started.logDir,
    redisPorts: started.ports.redis,
    output: () => output.lines(),
    async stop() {
      await started.stop();
      rmSync(stateDir, { recursive: true, force: true });
    },
  });
  return { ...shop, stack: started };
}

/** A running stack, local or in containers, with clients of its Redises on 127.0.0.1 (closed by stop). */
function withRedisClients(
  running: Omit<TestStack, "redis"> & { redisPorts: Readonly<Record<ServiceName, number>> },
): TestStack {
  const clients = new Map<ServiceName, Redis>();
  return {
    gatewayUrl: running.gatewayUrl,
    logDir: running.logDir,
    redis(service) {
      let client = clients.get(service);
      if (!client) {
        client = new Redis({ host: LOOPBACK, port: running.redisPorts[service], maxRetriesPerRequest: 3 });
        client.on("error", () => {});
        clients.set(service, client);
      }
      return client;
    },
    output: running.output,
    async stop() {
      for (const client of clients.values()) client.disconnect();
      clients.clear();
      await running.stop();
    },
  };
}
