/**
 * A checkout answer that repeats an outcome another request recorded — "already paid", or a failure
 * another process decided while this request waited — goes out only once that record is in the log:
 * the process that wrote it may have died before the log took its line, and a Redis that then lost
 * its data would come back without the outcome the client was told. The test holds the log writer
 * while the record waits in the stream, and lets it go once the request waits for it.
 */
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { keys } from "@checkout/common/keyspace";
import { logPath } from "@checkout/common/log";
import { parseLog } from "@checkout/common/replay";
import { eventually } from "../../common/test/support/eventually";
import { errorBody, post } from "../../common/test/support/http";
import { startRedis, type RedisServer } from "../../common/test/support/redis-server";
import { startService, type RunningService } from "../../common/test/support/service";
import { committedNotLogged, waitingForTheLog } from "../../common/test/support/unlogged";
import { newOrder, orderCodec, type Order } from "../src/order-rules";
import type { SagaRecord } from "../src/saga-record";

/** Real servers on a shared machine: generous, so that load elsewhere never fails a test by time alone. */
setDefaultTimeout(60_000);

/** No step is sent in these tests: the peers are never called. */
const UNUSED_PEER = "http://127.0.0.1:9";
/** A request that has not read the order within this long is stuck. */
const READ_TIMEOUT_MS = 30_000;

let redis: RedisServer;
let order: RunningService;
const logDir = mkdtempSync(join(tmpdir(), "checkout-repeated-"));

beforeAll(async () => {
  redis = await startRedis({ logFor: { service: "order", logDir } });
  order = await startService("order", {
    redisPort: redis.port,
    stockUrls: [UNUSED_PEER],
    paymentUrls: [UNUSED_PEER],
    sweeps: false,
  });
});

afterAll(async () => {
  await order?.stop();
  await redis?.stop();
  rmSync(logDir, { recursive: true, force: true });
});

const loggedSeqs = () =>
  existsSync(logPath(logDir, "order"))
    ? parseLog(readFileSync(logPath(logDir, "order"), "utf8")).records.map((r) => r.seq)
    : [];
/** The request has read the record and waits for the log to hold it. */
const untilWaitingForTheLog = async () =>
  expect(await eventually(async () => waitingForTheLog(order.store) > 0, READ_TIMEOUT_MS)).toBe(true);

const saga = (fields: Partial<SagaRecord>): SagaRecord => ({
  status: "running",
  attempt: 1,
  opId: "",
  step: 0,
  error: null,
  owner: "order-elsewhere",
  leaseUntil: Date.now() + 60_000,
  ...fields,
});

/** What another order process leaves when it dies between EXEC and its log line. */
const committedElsewhere = (id: string, state: Order, op: string) =>
  committedNotLogged(order.store.client, keys.order(id), orderCodec.encode(state), op);

test("'already paid' is answered once the payment's record is in the log", async () => {
  const paid: Order = {
    ...newOrder("u1", [["i1", 1]], 5),
    paid: true,
    saga: saga({ status: "done", opId: "paid-elsewhere:1.a", owner: "", leaseUntil: 0 }),
  };
  await redis.holdWriter();
  const seq = await committedElsewhere("paid-elsewhere", paid, "order.saga_paid");
  const answer = post(`${order.url}/checkout/paid-elsewhere`);
  await untilWaitingForTheLog();
  expect(loggedSeqs()).not.toContain(seq);

  await redis.resumeWriter();
  expect(await answer).toMatchObject({ status: 200, body: { order_id: "paid-elsewhere", paid: true } });
  expect(loggedSeqs()).toContain(seq);
});

test("a failure decided by the process driving the saga is answered once its record is in the log", async () => {
  const running: Order = { ...newOrder("u2", [["i1", 1]], 5), saga: saga({ opId: "failed-elsewhere:1.a" }) };
  await redis.holdWriter();
  const runningSeq = await committedElsewhere("failed-elsewhere", running, "order.checkout");
  const answer = post(`${order.url}/checkout/failed-elsewhere`);
  // The request reads the running saga and waits for the log to hold it before it acts on it.
  await untilWaitingForTheLog();
  expect(loggedSeqs()).not.toContain(runningSeq);
  await redis.resumeWriter();
  expect(await eventually(async () => loggedSeqs().includes(runningSeq))).toBe(true);

  // It waits for the saga's outcome, reading the record again and again. Only now is it decided.
  await redis.holdWriter();
  const error = { status: 409 as const, code: "insufficient_credit" as const, message: "user u2 has 0, needs 5" };
  const compensating: Order = {
    ...running,
    saga: saga({ opId: "failed-elsewhere:1.a", status: "compensating", step: 0, error }),
  };
  const seq = await committedElsewhere("failed-elsewhere", compensating, "order.saga_compensate");
  // It reads the decision, and waits for the log to hold it.
  await untilWaitingForTheLog();
  expect(loggedSeqs()).not.toContain(seq);

  await redis.resumeWriter();
  expect(await answer).toMatchObject({ status: 409, body: errorBody("insufficient_credit") });
  expect(loggedSeqs()).toContain(seq);
});
