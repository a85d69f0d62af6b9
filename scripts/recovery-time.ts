/**
 * `bun scripts/recovery-time.ts [orders]`: how long a Redis whose data is lost takes to be rebuilt
 * from its service's log. It starts a private stack (one replica of each service), prepares 100 000
 * items and users and `orders` orders (default 100 000) with batch_init, checks every order out,
 * stops the stack, and times `recover()` of each service's logs into an empty redis-server; then it
 * compacts each log into its snapshot and times the rebuild again.
 */
import { Redis } from "ioredis";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SERVICES } from "../common/src/config";
import { compact } from "../common/src/compact";
import { logFiles } from "../common/src/log";
import { recover } from "../common/src/recover";
import { startRedis } from "../common/test/support/redis-server";
import { Api, BATCH_INIT_TIMEOUT_MS, createSession } from "./bench/client";
import { runLoad } from "./bench/load";
import { batchInitBody } from "./bench/schemas";
import { findFreePortOffset } from "./lib/ports";
import { memoryOutput, startStack } from "./lib/stack";

const ENTITIES = 100_000;
const CLIENTS = 64;
const orders = Number(process.argv[2] ?? ENTITIES);

const stateDir = mkdtempSync(join(tmpdir(), "recovery-time-"));
const stack = await startStack({
  replicas: 1,
  portOffset: await findFreePortOffset(1),
  stateDir,
  output: memoryOutput(),
});
const session = createSession(CLIENTS);
const api = new Api(stack.gatewayUrl, session);
try {
  await api.post(`/stock/batch_init/${ENTITIES}/1000000/1`, batchInitBody, BATCH_INIT_TIMEOUT_MS);
  await api.post(`/payment/batch_init/${ENTITIES}/1000000`, batchInitBody, BATCH_INIT_TIMEOUT_MS);
  await api.post(`/orders/batch_init/${orders}/${ENTITIES}/${ENTITIES}/1`, batchInitBody, BATCH_INIT_TIMEOUT_MS);
  const started = performance.now();
  const load = await runLoad({
    urls: Array.from({ length: orders }, (_, i) => `${stack.gatewayUrl}/orders/checkout/${i}`),
    clients: CLIENTS,
    durationMs: 60 * 60_000,
    session,
  });
  console.log(
    `checked out ${load.counts["2xx"]} of ${orders} orders in ${((performance.now() - started) / 1000).toFixed(1)} s`,
  );
} finally {
  session.close();
  await stack.stop();
}

const sizeMiB = (service: (typeof SERVICES)[number]) =>
  logFiles(stack.logDir, service).reduce((sum, f) => sum + (statSync(f, { throwIfNoEntry: false })?.size ?? 0), 0) /
  2 ** 20;

for (const phase of ["log", "snapshot"] as const) {
  for (const service of SERVICES) {
    if (phase === "snapshot") await compact(stack.logDir, service);
    const redis = await startRedis();
    const client = new Redis({ port: redis.port });
    const mib = sizeMiB(service);
    await recover(service, client, stack.logDir, (line) =>
      console.log(`${phase === "log" ? "from the log:     " : "from the snapshot:"} ${line} (${mib.toFixed(1)} MiB)`),
    );
    client.disconnect();
    await redis.stop();
  }
}
rmSync(stateDir, { recursive: true, force: true });
