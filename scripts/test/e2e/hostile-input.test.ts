/**
 * Hostile input, generated: requests the API does not serve, sent to every endpoint through the
 * gateway (over raw sockets, so that nothing is tidied on the way) and straight to the services'
 * internal endpoints. Every one must get a 4xx with a JSON `{error, message}` body (a 505 for an
 * HTTP version the gateway does not speak), change nothing in any Redis, restart no process, and
 * make the gateway log no failed replica.
 *
 * Each request carries a state change that would land if the bad part were ignored: a corrupted
 * parameter sits beside valid ones naming real entities, a refused method or framing wraps a valid
 * `add`, and an internal step takes real stock or charges a real user.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import fc from "fast-check";
import { SERVICES, type ServiceName } from "../../../common/src/config";
import { keys } from "../../../common/src/keyspace";
import { get, post } from "../../../common/test/support/http";
import { redisState, type RedisState } from "../../../common/test/support/redis-state";
import { stateDifferences, untilQuiescent } from "../support/quiescence";
import { rawExchange, type RawAnswer } from "../support/raw-http";
import {
  badFraming,
  corruptedCall,
  ENDPOINTS,
  internalSpelling,
  jsonRequest,
  refusedMethod,
  request,
  seeded,
  stepBodyFor,
  validAdd,
  validValue,
} from "../support/hostile-requests";
import { startLocalTestStack } from "../support/test-stack";

setDefaultTimeout(120_000);

/** Generated requests per property: enough variety, and the whole file within seconds. */
const RUNS = 150;
/** Keys that change without any request changing data: the sequence counter, log lines in transit. */
const BOOKKEEPING = new Set<string>([keys.seq, keys.logStream, keys.durableLog, keys.compactionLock]);

/** A local stack: the test reaches each service replica's own port, and reads the supervisor's restart counts. */
let shop: Awaited<ReturnType<typeof startLocalTestStack>>;
const before: Partial<Record<ServiceName, RedisState>> = {};
let restartsBefore: Record<string, number>;
let gatewayLinesBefore: number;

beforeAll(async () => {
  shop = await startLocalTestStack();
  const ok = async (answer: Promise<{ status: number; body: any }>) => {
    const { status, body } = await answer;
    if (status !== 200) throw new Error(`seeding failed: ${status} ${JSON.stringify(body)}`);
    return body;
  };
  const url = (path: string) => `${shop.gatewayUrl}${path}`;
  seeded.item = (await ok(post(url("/stock/item/create/7")))).item_id;
  await ok(post(url(`/stock/add/${seeded.item}/100`)));
  seeded.user = (await ok(post(url("/payment/create_user")))).user_id;
  await ok(post(url(`/payment/add_funds/${seeded.user}/1000`)));
  seeded.order = (await ok(post(url(`/orders/create/${seeded.user}`)))).order_id;
  await ok(post(url(`/orders/addItem/${seeded.order}/${seeded.item}/2`)));
  await untilQuiescent(shop);
  for (const service of SERVICES) before[service] = await redisState(shop.redis(service));
  restartsBefore = restarts();
  gatewayLinesBefore = gatewayLines().length;
});

afterAll(async () => {
  await shop?.stop();
});

const restarts = () => Object.fromEntries(shop.stack.describe().map((p) => [p.name, p.restarts]));
const gatewayLines = () => shop.output().filter((line) => line.startsWith("[gateway]"));

// ---- what a refusal looks like ----------------------------------------------------------------

/** Why an answer is not a proper refusal, or undefined when it is one. */
function notARefusal(answer: RawAnswer, allowed: (status: number) => boolean = isClientError): string | undefined {
  if (!allowed(answer.status)) return `status ${answer.status}`;
  const body = answer.body;
  if (typeof body !== "object" || body === null || typeof body.error !== "string" || typeof body.message !== "string") {
    return `body is not {error, message}: ${JSON.stringify(body)}`;
  }
  return undefined;
}

const isClientError = (status: number) => status >= 400 && status < 500;

async function expectRefused(request: string, allowed?: (status: number) => boolean): Promise<void> {
  const answer = await rawExchange(shop.gatewayUrl, request);
  const problem = notARefusal(answer, allowed);
  if (problem) throw new Error(`${JSON.stringify(request.slice(0, 300))} → ${problem}`);
}

// ---- the properties ----------------------------------------------------------------------------

describe("through the gateway", () => {
  test("a corrupted path parameter of any endpoint is refused with a JSON 4xx", async () => {
    await fc.assert(
      fc.asyncProperty(corruptedCall, async ({ method, path }) => {
        await expectRefused(request(method, path));
      }),
      { numRuns: RUNS },
    );
  });

  test("a method the API does not serve is refused 405 with an Allow header, or 400 if it is no method at all", async () => {
    await fc.assert(
      fc.asyncProperty(refusedMethod, async (method) => {
        const answer = await rawExchange(shop.gatewayUrl, request(method, validAdd()));
        const problem = notARefusal(answer);
        if (problem) throw new Error(`${JSON.stringify(method.slice(0, 40))} → ${problem}`);
        if (answer.status === 405) expect(answer.headers.allow).toBe("GET, HEAD, POST");
        else expect(answer.status).toBe(400);
      }),
      { numRuns: RUNS },
    );
  });

  test("a served method on a route that does not take it is refused with a JSON 4xx", async () => {
    const swapped = ENDPOINTS.map((e) => ({
      method: e.method === "GET" ? "POST" : "GET",
      path: `${e.prefix}/${e.params.map(validValue).join("/")}`,
    }));
    for (const { method, path } of swapped) await expectRefused(request(method, path));
  });

  test("bad framing, an unsupported version and malformed headers are refused with JSON (a 4xx, or 505 for the version)", async () => {
    await fc.assert(
      fc.asyncProperty(badFraming, async ({ kind, text }) => {
        await expectRefused(text, kind === "version" ? (status) => status === 505 : undefined);
      }),
      { numRuns: RUNS },
    );
  });

  test("a request line of HTTP/0.9 gets the refusal's JSON body (that protocol has no status line)", async () => {
    const answer = await rawExchange(shop.gatewayUrl, `GET /stock/find/${seeded.item}\r\n`);
    expect(answer.status).toBeNaN();
    expect(answer.body).toEqual({ error: "invalid_input", message: expect.any(String) });
  });

  test("the internal step endpoints are refused however their path is spelled", async () => {
    let op = 0;
    await fc.assert(
      fc.asyncProperty(internalSpelling, async (path) => {
        await expectRefused(jsonRequest(path, stepBodyFor(path, `hostile:${++op}`)));
      }),
      { numRuns: RUNS },
    );
  });
});

describe("straight to a service's port", () => {
  const credentials = fc.oneof(
    fc.constant(undefined),
    fc.string({ maxLength: 80 }).map((s) => `Bearer ${s}`),
    fc.string({ maxLength: 80, unit: "binary" }),
    fc.stringMatching(/^[0-9a-f]{64}$/).map((hex) => `Bearer ${hex}`),
  );

  test.each(["stock", "payment"] as const)(
    "%s refuses a step call without the internal secret with 401, and applies nothing",
    async (service) => {
      const { url } = shop.stack.describe().find((p) => p.name === `${service}-1`)!;
      let op = 0;
      await fc.assert(
        fc.asyncProperty(credentials, async (authorization) => {
          const path = `/internal/steps`;
          const json =
            service === "payment" ? stepBodyFor("/payment", `direct:${++op}`) : stepBodyFor("/stock", `direct:${++op}`);
          const answer = await rawExchange(
            url!,
            jsonRequest(path, json, authorization === undefined ? [] : [`Authorization: ${authorization}`]),
          );
          // A header value Bun's parser refuses (a control character) is answered 400 by the parser itself.
          if (answer.status === 400) return;
          expect({ status: answer.status, body: answer.body }).toEqual({
            status: 401,
            body: { error: "unauthorized", message: expect.any(String) },
          });
        }),
        { numRuns: RUNS },
      );
    },
  );
});

describe("where the services listen", () => {
  test("every service replica of the local stack listens on loopback alone", async () => {
    // /proc/net/tcp: "local_address" is hex IP:port (the IP's bytes in host order), st 0A is LISTEN.
    const listening = (await Bun.file("/proc/net/tcp").text())
      .split("\n")
      .slice(1)
      .map((line) => line.trim().split(/\s+/))
      .filter((fields) => fields[3] === "0A")
      .map((fields) => fields[1]!.split(":"))
      .map(([ip, port]) => ({ ip: ip!, port: parseInt(port!, 16) }));
    const replicas = shop.stack.describe().filter((p) => p.role === "service");
    expect(replicas.length).toBeGreaterThan(0);
    for (const replica of replicas) {
      const addresses = listening.filter((l) => l.port === replica.port).map((l) => l.ip);
      expect({ name: replica.name, addresses }).toEqual({ name: replica.name, addresses: ["0100007F"] });
    }
  });
});

describe("afterwards", () => {
  test("every Redis holds exactly what it held before", async () => {
    await untilQuiescent(shop);
    const differences: string[] = [];
    for (const service of SERVICES) {
      for (const line of stateDifferences(before[service]!, await redisState(shop.redis(service)), BOOKKEEPING))
        differences.push(`${service}: ${line}`);
    }
    expect(differences).toEqual([]);
  });

  test("the public API shows the seeded entities as they were", async () => {
    const url = (path: string) => `${shop.gatewayUrl}${path}`;
    expect((await get(url(`/stock/find/${seeded.item}`))).body).toEqual({ stock: 100, price: 7 });
    expect((await get(url(`/payment/find_user/${seeded.user}`))).body).toEqual({ user_id: seeded.user, credit: 1000 });
    expect((await get(url(`/orders/find/${seeded.order}`))).body).toMatchObject({
      paid: false,
      items: [[seeded.item, 2]],
      total_cost: 14,
    });
  });

  test("no process restarted, and the gateway took no replica for failed", () => {
    expect(restarts()).toEqual(restartsBefore);
    const upstreamErrors = gatewayLines()
      .slice(gatewayLinesBefore)
      .filter((line) => /upstream|no live upstreams/.test(line));
    expect(upstreamErrors).toEqual([]);
  });
});
