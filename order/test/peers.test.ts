/**
 * The order service's calls to a peer's replicas: active/standby over real HTTP servers. The first
 * replica takes every call; the next one only those the first could not be reached for; an answer,
 * even a refusal or a 5xx, is never sent again elsewhere.
 */
import { afterEach, expect, test } from "bun:test";
import { Peer } from "../src/peers";

type Replica = { url: string; hits: () => number; stop: () => Promise<void> };

function replica(status = 200): Replica {
  let hits = 0;
  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    fetch: () => {
      hits++;
      return Response.json(status === 200 ? { ok: true } : { error: "insufficient_stock", message: "no" }, { status });
    },
  });
  return { url: `http://127.0.0.1:${server.port}`, hits: () => hits, stop: () => server.stop(true) };
}

const started: Replica[] = [];
const start = (status?: number) => {
  const r = replica(status);
  started.push(r);
  return r;
};
afterEach(async () => {
  for (const r of started.splice(0)) await r.stop();
});

const peerOf = (...replicas: Replica[]) => new Peer("stock", replicas.map((r) => r.url), new Bun.FetchSession({ keepAlive: { maxIdleSockets: 8 } }), 8, 1_000);

test("every call goes to the active replica while it answers", async () => {
  const [active, standby] = [start(), start()];
  const peer = peerOf(active, standby);
  for (let i = 0; i < 5; i++) expect((await peer.post("/internal/take/o:1.x", { items: [] })).kind).toBe("ok");
  expect([active.hits(), standby.hits()]).toEqual([5, 0]);
});

test("a call the active replica cannot take goes to the standby", async () => {
  const [active, standby] = [start(), start()];
  const peer = peerOf(active, standby);
  await active.stop();
  expect((await peer.post("/internal/take/o:1.x", { items: [] })).kind).toBe("ok");
  expect(standby.hits()).toBe(1);
});

test("a refusal or a 5xx from the active replica is the answer: the standby is not asked", async () => {
  for (const [status, kind] of [
    [409, "refused"],
    [503, "unknown"],
  ] as const) {
    const [active, standby] = [start(status), start()];
    expect((await peerOf(active, standby).post("/internal/take/o:1.x", { items: [] })).kind).toBe(kind);
    expect([active.hits(), standby.hits()]).toEqual([1, 0]);
  }
});

test("with no replica reachable the outcome is unknown, naming the last one tried", async () => {
  const [a, b] = [start(), start()];
  await a.stop();
  await b.stop();
  const answer = await peerOf(a, b).post("/internal/take/o:1.x", { items: [] });
  expect(answer.kind).toBe("unknown");
  if (answer.kind === "unknown") expect(answer.reason).toContain(b.url);
});
