/**
 * `bun run compose:up` and `bun run compose:down`: the system in containers (compose.yaml).
 *
 *   bun run compose:up      sets up what is missing (scripts/lib/containers.ts), builds the images,
 *                           starts every container, waits until each is healthy, prints the gateway
 *   bun run compose:down    stops and removes the containers; `-v` removes the volumes too
 *   bun scripts/compose.ts build    the set-up and the images, nothing started (the container tests'
 *                                   phase runs this first, scripts/test.ts)
 *
 * The project is `checkout` (COMPOSE_PROJECT_NAME moves it); CHECKOUT_GATEWAY_PORT moves the gateway
 * off 8000. Extra arguments of `down` go to compose's own `down`.
 */
import {
  composeArgs,
  composeServices,
  ContainerSetupError,
  prepareContainers,
  run,
  sayOnStderr,
  waitForHealthy,
} from "./lib/containers";

const PROJECT = process.env.COMPOSE_PROJECT_NAME || "checkout";
/** A Redis opens its port only after replaying its log, which grows with the data (as for the local stack). */
const HEALTHY_TIMEOUT_MS = 5 * 60_000;
const DEFAULT_GATEWAY_PORT = 8000;

async function up(): Promise<number> {
  const started = performance.now();
  const context = await prepareContainers();
  sayOnStderr(`${context.command.join(" ")} up --build (project ${PROJECT})`);
  const result = await run(composeArgs(context, PROJECT, ["up", "--detach", "--build"]), {
    env: context.env,
    echo: true,
  });
  if (result.code !== 0) {
    console.error(`compose:up: compose up failed (exit ${result.code})`);
    return 1;
  }
  const services = await composeServices(context, PROJECT);
  try {
    await waitForHealthy(PROJECT, services, HEALTHY_TIMEOUT_MS);
  } catch (error) {
    console.error(`compose:up: ${(error as Error).message}`);
    return 1;
  }
  const port = process.env.CHECKOUT_GATEWAY_PORT || DEFAULT_GATEWAY_PORT;
  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  console.log(`\nAll ${services.length} containers healthy after ${seconds} s. The gateway: http://127.0.0.1:${port}`);
  console.log("`bun run compose:down` stops them.");
  return 0;
}

async function build(): Promise<number> {
  const started = performance.now();
  const context = await prepareContainers();
  sayOnStderr(`${context.command.join(" ")} build, from ${Object.values(context.env).join(", ")}`);
  const result = await run(composeArgs(context, PROJECT, ["build"]), { env: context.env, echo: true });
  if (result.code !== 0) {
    console.error(`compose: compose build failed (exit ${result.code})`);
    return 1;
  }
  sayOnStderr(`images ready after ${((performance.now() - started) / 1000).toFixed(1)} s`);
  return 0;
}

async function down(extra: string[]): Promise<number> {
  if ((await run(["docker", "info"])).code !== 0) {
    console.error("compose:down: no Docker engine answers here, so nothing runs in it");
    return 0;
  }
  const context = await prepareContainers();
  const result = await run(composeArgs(context, PROJECT, ["down", ...extra]), { env: context.env, echo: true });
  return result.code;
}

async function main(): Promise<number> {
  const [command, ...rest] = process.argv.slice(2);
  try {
    if (command === "up") return await up();
    if (command === "down") return await down(rest);
    if (command === "build") return await build();
  } catch (error) {
    if (!(error instanceof ContainerSetupError)) throw error;
    console.error(`compose: ${error.message}`);
    return 1;
  }
  console.error("usage: bun scripts/compose.ts up | down [compose down options] | build");
  return 2;
}

process.exit(await main());
