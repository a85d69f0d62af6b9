/**
 * The order service's calls to a peer's replicas: active/standby over real HTTP servers. The first
 * replica takes every call; the next one only those the first could not be reached for; an answer,
 * even a refusal or a 5xx, is never sent again elsewhere. A replica that could not be reached is
 * passed over until it takes connections again. Saga steps made while a call is in flight leave
 * together in the next call, and each gets its own answer.
 */
import { afterEach, expect, test } from "bun:test";
import { STEPS_PATH, type StepReply } from "@checkout/common/internal";
import { eventually } from "../../common/test/support/eventually";
import { TEST_INTERNAL_SECRET } from "../../common/test/support/http";
import { Peer } from "../src/peers";

const HOUR_MS = 3_600_000;

type Call = { path: string; steps: Array<Record<string, unknown>> };
type Replica = { url: string; calls: Call[]; stop: () => Promise<void> };

/**
 * A replica that answers every step with `reply(step)`, or the whole call with `status` when it is
 * not 200; each call is held until `hold` resolves.
 */
type ReplicaOptions = {
  status?: number;
  reply?: (step: Record<string, unknown>) => StepReply;
  hold?: () => Promise<void>;
  port?: number;
};

function replica(options: ReplicaOptions = {}): Replica {
  const calls: Call[] = [];
  const reply = options.reply ?? (() => ({ status: 200, outcome: "applied" }));
  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: options.port ?? 0,
    fetch: async (request) => {
      const steps = request.method === "POST" ? ((await request.json()) as { steps: Call["steps"] }).steps : [];
      calls.push({ path: new URL(request.url).pathname, steps });
      await options.hold?.();
      if (options.status && options.status !== 200)
        return Response.json({ error: "redis_unavailable", message: "no" }, { status: options.status });
      return Response.json({ answers: steps.map(reply) });
    },
  });
  return { url: `http://127.0.0.1:${server.port}`, calls, stop: () => server.stop(true) };
}

const started: Replica[] = [];
const start = (options?: ReplicaOptions) => {
  const r = replica(options);
  started.push(r);
  return r;
};
afterEach(async () => {
  for (const r of started.splice(0)) await r.stop();
});

/**
 * A call to these loopback replicas that takes longer than this is stuck. No test here waits for the
 * timeout (an unreachable replica refuses the connection at once), so it only has to outlast a slow machine.
 */
const CALL_TIMEOUT_MS = 30_000;

/** A replica that comes back takes calls again at once here, unless a test says otherwise. */
const REJOIN_AT_ONCE_MS = 0;

const peerAt = (urls: string[], stepCallsInFlight = 2, rejoinAfterMs = REJOIN_AT_ONCE_MS) =>
  new Peer(
    "stock",
    urls,
    new Bun.FetchSession({ keepAlive: { maxIdleSockets: 8 } }),
    TEST_INTERNAL_SECRET,
    8,
    CALL_TIMEOUT_MS,
    stepCallsInFlight,
    undefined,
    undefined,
    undefined,
    rejoinAfterMs,
  );
const peerOf = (replicas: Replica[], stepCallsInFlight = 2, rejoinAfterMs = REJOIN_AT_ONCE_MS) =>
  peerAt(
    replicas.map((r) => r.url),
    stepCallsInFlight,
    rejoinAfterMs,
  );
const take = (peer: Peer, op = "o:1.x") => peer.step("take", op, { items: [["i", 1]] });

test("every call goes to the active replica while it answers", async () => {
  const [active, standby] = [start(), start()];
  const peer = peerOf([active, standby]);
  for (let i = 0; i < 5; i++) expect((await take(peer)).kind).toBe("ok");
  expect([active.calls.length, standby.calls.length]).toEqual([5, 0]);
  expect(active.calls[0]).toEqual({ path: STEPS_PATH, steps: [{ action: "take", op_id: "o:1.x", items: [["i", 1]] }] });
});

test("a call the active replica cannot take goes to the standby", async () => {
  const [active, standby] = [start(), start()];
  const peer = peerOf([active, standby]);
  await active.stop();
  expect((await take(peer)).kind).toBe("ok");
  expect(standby.calls.length).toBe(1);
});

test("a replica that could not be reached is passed over until it takes connections again, then takes the calls again", async () => {
  const [active, standby] = [start(), start()];
  const peer = peerOf([active, standby]);
  await active.stop();
  for (let i = 0; i < 3; i++) expect((await take(peer)).kind).toBe("ok");
  expect(standby.calls.length).toBe(3);
  expect(peer.replicasDown).toEqual([active.url]);
  // It comes back, at the same address here (a container may come back at another; its name is
  // looked up anew on each connection).
  const back = start({ port: Number(new URL(active.url).port) });
  expect(await eventually(async () => peer.replicasDown.length === 0, 10_000)).toBe(true);
  expect((await take(peer)).kind).toBe("ok");
  expect([back.calls.length, standby.calls.length]).toEqual([1, 3]);
});

test("a replica that takes connections again is passed over until it has taken them for the rejoin period", async () => {
  const [active, standby] = [start(), start()];
  const peer = peerOf([active, standby], 2, HOUR_MS);
  await active.stop();
  expect((await take(peer)).kind).toBe("ok");
  expect(peer.replicasDown).toEqual([active.url]);
  const back = start({ port: Number(new URL(active.url).port) });
  // A probe has found it taking connections.
  expect(await eventually(async () => peer.replicasRejoining.includes(active.url))).toBe(true);
  for (let i = 0; i < 3; i++) expect((await take(peer)).kind).toBe("ok");
  expect([back.calls.length, standby.calls.length]).toEqual([0, 4]);
  expect(peer.replicasDown).toEqual([active.url]);
});

test("a replica that answers late is not marked down: it takes connections, it is only slow", async () => {
  const release = Promise.withResolvers<void>();
  const [slow, standby] = [start({ hold: () => release.promise }), start()];
  const peer = new Peer(
    "stock",
    [slow.url, standby.url],
    new Bun.FetchSession({ keepAlive: { maxIdleSockets: 8 } }),
    TEST_INTERNAL_SECRET,
    8,
    500,
  );
  // Past its connect timeout the call asks for a connection, gets one, and waits on until its own timeout.
  expect((await take(peer)).kind).toBe("ok");
  release.resolve();
  expect([slow.calls.length, standby.calls.length]).toEqual([1, 1]);
  expect(peer.replicasDown).toEqual([]);
});

test("a refusal or a 5xx from the active replica is the answer: the standby is not asked", async () => {
  for (const [options, kind] of [
    [{ reply: (): StepReply => ({ status: 409, error: "insufficient_stock", message: "no" }) }, "refused"],
    [{ status: 503 }, "unknown"],
  ] as const) {
    const [active, standby] = [start(options), start()];
    expect((await take(peerOf([active, standby]))).kind).toBe(kind);
    expect([active.calls.length, standby.calls.length]).toEqual([1, 0]);
  }
});

test("a step refused as operation_expired is unknown: the participant no longer knows its first outcome", async () => {
  const active = start({
    reply: (): StepReply => ({ status: 409, error: "operation_expired", message: "record may have expired" }),
  });
  expect((await take(peerOf([active]))).kind).toBe("unknown");
});

test("with no replica reachable the outcome is unknown, naming the last one tried", async () => {
  const [a, b] = [start(), start()];
  await a.stop();
  await b.stop();
  const answer = await take(peerOf([a, b]));
  expect(answer.kind).toBe("unknown");
  if (answer.kind === "unknown") expect(answer.reason).toContain(b.url);
});

test("steps made while the calls in flight are full leave together in the next call, each with its own answer", async () => {
  const firstCallArrived = Promise.withResolvers<void>();
  const release = Promise.withResolvers<void>();
  let held = 0;
  const outcomes: Record<string, StepReply> = {
    "o1:1": { status: 200, outcome: "applied" },
    "o2:1": { status: 409, error: "insufficient_stock", message: "no" },
    "o3:1": { status: 503, error: "redis_unavailable", message: "down" },
    "o4:1": { status: 200, outcome: "applied" },
  };
  // The first call is held at the replica until the other steps have queued behind it.
  const holdFirst = () => {
    if (held++ > 0) return Promise.resolve();
    firstCallArrived.resolve();
    return release.promise;
  };
  const active = start({ reply: (step) => outcomes[String(step.op_id)]!, hold: holdFirst });
  const peer = peerOf([active], 1);
  const answers = ["o1:1", "o2:1", "o3:1", "o4:1"].map((op) => take(peer, op));
  await firstCallArrived.promise;
  expect(active.calls.map((c) => c.steps.length)).toEqual([1]);
  release.resolve();
  expect((await Promise.all(answers)).map((a) => a.kind)).toEqual(["ok", "refused", "unknown", "ok"]);
  expect(active.calls.map((c) => c.steps.map((s) => s.op_id))).toEqual([["o1:1"], ["o2:1", "o3:1", "o4:1"]]);
});

test("a call answered without one answer per step leaves every step's outcome unknown", async () => {
  const server = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => Response.json({ answers: [] }) });
  try {
    expect((await take(peerAt([`http://127.0.0.1:${server.port}`]))).kind).toBe("unknown");
  } finally {
    server.stop(true);
  }
});

const roundRobinOf = (replicas: Replica[]) =>
  new Peer(
    "stock",
    replicas.map((r) => r.url),
    new Bun.FetchSession({ keepAlive: { maxIdleSockets: 8 } }),
    TEST_INTERNAL_SECRET,
    8,
    CALL_TIMEOUT_MS,
    1,
    undefined,
    undefined,
    "round-robin",
  );

test("round robin: calls one after the other go to each replica in turn", async () => {
  const [a, b] = [start(), start()];
  const peer = roundRobinOf([a, b]);
  for (let i = 0; i < 6; i++) expect((await take(peer, `o:${i}.x`)).kind).toBe("ok");
  expect([a.calls.length, b.calls.length]).toEqual([3, 3]);
});

test("round robin: each replica has a step call in flight of its own, and a replica that cannot be reached is passed over", async () => {
  const held = Promise.withResolvers<void>();
  const [a, b] = [start({ hold: () => held.promise }), start({ hold: () => held.promise })];
  const peer = roundRobinOf([a, b]);
  const first = [take(peer, "o:1.x"), take(peer, "o:2.x")];
  // One call per replica is in flight at once, not one for the whole peer.
  expect(await eventually(async () => a.calls.length === 1 && b.calls.length === 1)).toBe(true);
  held.resolve();
  for (const answer of await Promise.all(first)) expect(answer.kind).toBe("ok");
  await a.stop();
  for (let i = 3; i < 7; i++) expect((await take(peer, `o:${i}.x`)).kind).toBe("ok");
  expect(b.calls.length).toBe(5);
});

test("a lone URL (a Kubernetes Service) is tried again when a call to it fails: the new connection may reach another pod", async () => {
  let connections = 0;
  const body = JSON.stringify({ answers: [{ status: 200, outcome: "applied" }] });
  // The first connection is cut without an answer (its pod died); the next ones are answered.
  const listener = Bun.listen({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      open() {
        connections += 1;
      },
      data(socket) {
        if (connections === 1) return void socket.end();
        socket.end(
          `HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\nconnection: close\r\n\r\n${body}`,
        );
      },
    },
  });
  try {
    const peer = peerAt([`http://127.0.0.1:${listener.port}`]);
    expect((await take(peer)).kind).toBe("ok");
    // The call, its second try, and the probe that found it reachable again.
    expect(connections).toBeGreaterThanOrEqual(2);
  } finally {
    listener.stop(true);
  }
});
