/**
 * Hostile requests, generated (fast-check): corrupted path parameters for every endpoint of API.md,
 * methods the API does not serve, bad framings and protocol versions, and every spelling of the
 * internal step endpoints' path. Each carries a state change on the entities in `seeded` that would
 * land if the bad part were ignored. Used by scripts/test/e2e/hostile-input.test.ts.
 */
import fc from "fast-check";

const MAX_INTEGER = Number.MAX_SAFE_INTEGER;
const SERVED_METHODS = new Set(["GET", "HEAD", "POST"]);

/**
 * Real entities, set by the test before it sends anything, so that a request which slipped through
 * would change something.
 */
export const seeded = { item: "", user: "", order: "" };

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
export const ENDPOINTS: ReadonlyArray<{ method: "GET" | "POST"; prefix: string; params: readonly Param[] }> = [
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

export const validValue = (param: Param) => (param === "int" ? "1" : seeded[param]);

/** One endpoint with one parameter (at least) corrupted, the others valid and naming real entities. */
export const corruptedCall = fc
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
export const validAdd = () => `/stock/add/${seeded.item}/5`;

export const request = (method: string, path: string, headers: readonly string[] = [], body = "") =>
  `${method} ${path} HTTP/1.1\r\nHost: gateway\r\nConnection: close\r\n${headers.map((h) => `${h}\r\n`).join("")}\r\n${body}`;

/** A method token the API does not serve: well-formed (nginx passes those on) or not. */
export const refusedMethod = fc
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
export const badFraming = fc.oneof(
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
export const internalSpelling = fc
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

export const stepBodyFor = (path: string, opId: string) =>
  /^\/payment/i.test(path)
    ? { steps: [{ action: "charge", op_id: opId, user_id: seeded.user, amount: 3 }] }
    : { steps: [{ action: "take", op_id: opId, items: [[seeded.item, 3]] }] };

export const jsonRequest = (path: string, json: unknown, headers: readonly string[] = []) => {
  const body = JSON.stringify(json);
  return request(
    "POST",
    path,
    ["Content-Type: application/json", `Content-Length: ${Buffer.byteLength(body)}`, ...headers],
    body,
  );
};
