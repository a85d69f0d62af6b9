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
import { startLocalTestStack } from "../support/test-stack";

setDefaultTimeout(120_000);

/** Generated requests per property: enough variety, and the whole file within seconds. */
const RUNS = 150;
/** Keys that change without any request changing data: the sequence counter, log lines in transit. */
const BOOKKEEPING = new Set<string>([keys.seq, keys.logStream, keys.durableLog, keys.compactionLock]);
const MAX_INTEGER = Number.MAX_SAFE_INTEGER;
const SERVED_METHODS = new Set(["GET", "HEAD", "POST"]);

/** A local stack: the test reaches each service replica's own port, and reads the supervisor's restart counts. */
let shop: Awaited<ReturnType<typeof startLocalTestStack>>;
/** Real entities, so that a request which slipped through would change something. */
const seeded = { item: "", user: "", order: "" };
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

// ---- generators --------------------------------------------------------------------------------

const VALID_ID = /^[A-Za-z0-9_-]{1,64}$/;
const isValidInteger = (s: string) => /^\d+$/.test(s) && Number(s) <= MAX_INTEGER;

/** Path values the API must refuse as an id: any text outside 1-64 of [A-Za-z0-9_-]. */
const badId = fc
  .oneof(
    fc.string({ minLength: 0, maxLength: 12, unit: "binary" }),
    fc.string({ minLength: 65, maxLength: 90 }),
    fc.constantFrom(
      ".",
      "..",
      "%",
      "a b",
      "a/b",
      "a\\b",
      "a?b",
      "a#b",
      "ü",
      "\u0000",
      "a\nb",
      "<script>",
      "' OR 1=1",
      // biome-ignore lint/suspicious/noTemplateCurlyInString: a template placeholder sent as hostile text
      "${x}",
    ),
  )
  .filter((s) => !VALID_ID.test(s));

/** Path values the API must refuse as an amount or count. */
const badInteger = fc
  .oneof(
    fc.string({ minLength: 0, maxLength: 8, unit: "binary" }),
    fc.integer({ min: -1_000_000, max: -1 }).map(String),
    fc.bigInt({ min: BigInt(MAX_INTEGER) + 1n, max: 10n ** 30n }).map(String),
    fc.constantFrom("-0", "1.5", "1e3", "0x10", " 1", "1 ", "+1", "Infinity", "NaN", "١", "0.0"),
  )
  .filter((s) => !isValidInteger(s));

/** A value as it goes in a path: %-encoded (the usual client), or as it is where the request line allows it. */
const inPath = (value: string) => encodeURIComponent(value);

type Param = "item" | "user" | "order" | "int";
/** Every endpoint of API.md with parameters, as method, path segments and parameter kinds. */
const ENDPOINTS: ReadonlyArray<{ method: "GET" | "POST"; prefix: string; params: readonly Param[] }> = [
  { method: "POST", prefix: "/stock/item/create", params: ["int"] },
  { method: "GET", prefix: "/stock/find", params: ["item"] },
  { method: "POST", prefix: "/stock/add", params: ["item", "int"] },
  { method: "POST", prefix: "/stock/subtract", params: ["item", "int"] },
  { method: "POST", prefix: "/stock/batch_init", params: ["int", "int", "int"] },
  { method: "GET", prefix: "/payment/find_user", params: ["user"] },
  { method: "POST", prefix: "/payment/add_funds", params: ["user", "int"] },
  { method: "POST", prefix: "/payment/pay", params: ["user", "int"] },
  { method: "POST", prefix: "/payment/batch_init", params: ["int", "int"] },
  { method: "POST", prefix: "/orders/create", params: ["user"] },
  { method: "GET", prefix: "/orders/find", params: ["order"] },
  { method: "POST", prefix: "/orders/addItem", params: ["order", "item", "int"] },
  { method: "POST", prefix: "/orders/checkout", params: ["order"] },
  { method: "POST", prefix: "/orders/batch_init", params: ["int", "int", "int", "int"] },
];

const validValue = (param: Param) => (param === "int" ? "1" : seeded[param]);

/** One endpoint with one parameter (at least) corrupted, the others valid and naming real entities. */
const corruptedCall = fc
  .record({
    endpoint: fc.constantFrom(...ENDPOINTS),
    corrupt: fc.nat(),
    id: badId,
    integer: badInteger,
  })
  .map(({ endpoint, corrupt, id, integer }) => {
    const at = corrupt % endpoint.params.length;
    const values = endpoint.params.map((param, i) =>
      i !== at ? validValue(param) : inPath(param === "int" ? integer : id),
    );
    return { method: endpoint.method, path: `${endpoint.prefix}/${values.join("/")}` };
  });

/** A valid state-changing call, for wrapping in a refused method or framing. */
const validAdd = () => `/stock/add/${seeded.item}/5`;

const request = (method: string, path: string, headers: readonly string[] = [], body = "") =>
  `${method} ${path} HTTP/1.1\r\nHost: gateway\r\nConnection: close\r\n${headers.map((h) => `${h}\r\n`).join("")}\r\n${body}`;

/** A method token the API does not serve: well-formed (nginx passes those on) or not. */
const refusedMethod = fc
  .oneof(
    fc.constantFrom(
      "PUT",
      "PATCH",
      "DELETE",
      "OPTIONS",
      "TRACE",
      "CONNECT",
      "PROPFIND",
      "BREW",
      "FOO",
      "A".repeat(1000),
    ),
    fc.stringMatching(/^[A-Z_-]{1,40}$/),
    fc.string({ minLength: 1, maxLength: 10, unit: "binary" }).filter((m) => !/[\s]/.test(m)),
  )
  .filter((m) => !SERVED_METHODS.has(m));

/** Framings and protocol versions the gateway refuses, each around a valid `add`. */
const badFraming = fc.oneof(
  fc
    .constantFrom("gzip", "identity", "chunked, chunked", "\tchunked", "chunked ,gzip", "x-custom", "CHUNKED, gzip")
    .map((te) => ({
      kind: "transfer-encoding",
      text: request("POST", validAdd(), [`Transfer-Encoding: ${te}`], "0\r\n\r\n"),
    })),
  fc
    .constantFrom(
      ["Content-Length: 5", "Transfer-Encoding: chunked"],
      ["Content-Length: 0", "Content-Length: 5"],
      ["Content-Length: -1"],
      ["Content-Length: 1x"],
      ["Transfer-Encoding: chunked"],
    )
    .map((headers) => ({ kind: "length", text: request("POST", validAdd(), headers, "zz\r\nabc\r\n0\r\n\r\n") })),
  fc.constantFrom("HTTP/2.0", "HTTP/3", "HTTP/9.9", "HTTP/2").map((version) => ({
    kind: "version",
    text: `POST ${validAdd()} ${version}\r\nHost: gateway\r\nConnection: close\r\n\r\n`,
  })),
  fc.constantFrom("HTTP/1.1x", "HTTP/1", "HTTPS/1.1", "http/1.1", "HTTP/1.1 extra").map((version) => ({
    kind: "request line",
    text: `POST ${validAdd()} ${version}\r\nHost: gateway\r\nConnection: close\r\n\r\n`,
  })),
  fc
    .constantFrom("Bad Header: x", `X-A: ${"a".repeat(20_000)}`, "X-A\u0000: x", " X-Folded: x", "X-A: a\rb")
    .map((header) => ({
      kind: "header",
      text: request("POST", validAdd(), [header]),
    })),
  fc.constantFrom("\u0001", "\u007f", "%zz", "%0", "%00", "\u0000", " x").map((bad) => ({
    kind: "path",
    text: request("POST", `${validAdd()}${bad}`),
  })),
  fc.constant({ kind: "no host", text: `POST ${validAdd()} HTTP/1.1\r\nConnection: close\r\n\r\n` }),
  fc.constant({ kind: "path too long", text: request("POST", `${validAdd()}${"0".repeat(9000)}`) }),
);

/** "internal/steps" spelled every way a path can be: case, %-escapes, dot segments, extra slashes. */
const internalSpelling = fc
  .record({
    prefix: fc.constantFrom("stock", "payment", "orders", "STOCK", "Payment"),
    before: fc.constantFrom(
      "",
      "/",
      "find/../",
      "find/%2E%2E/",
      "find%2F..%2F",
      "./",
      "%2F",
      "find_user%2F..%2F",
      "x/..%2F",
    ),
    word: fc.array(fc.boolean(), { minLength: 8, maxLength: 8 }),
    upper: fc.boolean(),
    separator: fc.constantFrom("/", "%2F", "%2f", "//", "/./"),
  })
  .map(({ prefix, before, word, upper, separator }) => {
    const internal = [..."internal"]
      .map((ch, i) => (word[i] ? `%${ch.charCodeAt(0).toString(16)}` : upper ? ch.toUpperCase() : ch))
      .join("");
    return `/${prefix}/${before}${internal}${separator}steps`;
  });

const stepBodyFor = (path: string, opId: string) =>
  /^\/payment/i.test(path)
    ? { steps: [{ action: "charge", op_id: opId, user_id: seeded.user, amount: 3 }] }
    : { steps: [{ action: "take", op_id: opId, items: [[seeded.item, 3]] }] };

const jsonRequest = (path: string, json: unknown, headers: readonly string[] = []) => {
  const body = JSON.stringify(json);
  return request(
    "POST",
    path,
    ["Content-Type: application/json", `Content-Length: ${Buffer.byteLength(body)}`, ...headers],
    body,
  );
};

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
