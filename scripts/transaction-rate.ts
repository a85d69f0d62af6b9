/**
 * `bun scripts/transaction-rate.ts [seconds]`: how many transactions a second one service's Redis,
 * with the durable log append that makes each one answerable, sustains on this machine. It starts a
 * private stack (two stock replicas, active/standby), makes 100 000 items with batch_init, and sends
 * `POST /stock/add/<item>/1` to random items from 64 clients for `seconds` (default 10) after a 3 s
 * warm-up: each is one optimistic transaction and one log line, group-committed as every write is.
 * The figure is the ceiling one Redis-and-log pair puts on a service however many pods it has
 * (docs/kubernetes.md), measured with the client, nginx and the stock process on the same
 * cores.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Api, BATCH_INIT_TIMEOUT_MS, createSession } from "./bench/client";
import { percentileMs } from "./bench/histogram";
import { runLoad } from "./bench/load";
import { batchInitBody } from "./bench/schemas";
import { findFreePortOffset } from "./lib/ports";
import { memoryOutput, startStack } from "./lib/stack";

const ITEMS = 100_000;
const CLIENTS = 64;
const WARMUP_S = 3;
const seconds = Number(process.argv[2] ?? 10);

const stateDir = mkdtempSync(join(tmpdir(), "transaction-rate-"));
const stack = await startStack({
  replicas: { stock: 2, order: 1, payment: 1 },
  portOffset: await findFreePortOffset(2),
  stateDir,
  output: memoryOutput(),
});
const session = createSession(CLIENTS);
const api = new Api(stack.gatewayUrl, session);
try {
  await api.post(`/stock/batch_init/${ITEMS}/1000000/1`, batchInitBody, BATCH_INIT_TIMEOUT_MS);
  const adds = (n: number) =>
    Array.from({ length: n }, () => `${stack.gatewayUrl}/stock/add/${Math.floor(Math.random() * ITEMS)}/1`);
  const load = (durationS: number) =>
    runLoad({ urls: adds(200_000), clients: CLIENTS, durationMs: durationS * 1000, session });
  await load(WARMUP_S);
  const measured = await load(seconds);
  const cpu = measured.cpu ? `, ${(measured.cpu.msPerCheckout).toFixed(2)} ms of the machine's CPU each` : "";
  console.log(
    `${Math.round(measured.throughput)} transactions/s on one stock Redis (${measured.counts["2xx"]} in ${(measured.elapsedMs / 1000).toFixed(1)} s, ` +
      `p50 ${percentileMs(measured.histogram, 50).toFixed(1)} ms, p99 ${percentileMs(measured.histogram, 99).toFixed(1)} ms${cpu}; ` +
      `${measured.counts["5xx"] + measured.counts.network} errors)`,
  );
} finally {
  session.close();
  await stack.stop();
  rmSync(stateDir, { recursive: true, force: true });
}
