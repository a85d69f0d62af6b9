/**
 * The gateway's nginx.conf, as one pure function of where the replicas are.
 *
 * The local stack renders it into its state folder on every start; `gateway/nginx.compose.conf` is
 * the same function rendered for compose's host names and committed (regenerate it with
 * `bun gateway/render.ts`; scripts/test/compose-equivalence.test.ts fails if the two drift apart).
 *
 * Routing: `/orders/*` → order, `/stock/*` → stock, `/payment/*` → payment, the first path segment
 * stripped. Which requests nginx may re-send to another replica is the one decision here that touches
 * correctness; see `RetryPolicy` below.
 *
 * Replicas are active/standby: the first replica of a service takes every request, the others stand
 * by for when it dies. On two cores one busy process per service is faster than two half-busy ones
 * (its batches of transactions and log appends are larger; README, Benchmark results). The order
 * service calls its peers the same way (order/src/peers.ts).
 *
 * Failover assumes no refusal. A replica is named in each request's proxy_pass, so nginx looks its
 * address up again (given a `resolver`: Docker's DNS in compose) at most RESOLVER_VALID_S after the
 * last look-up, instead of once at start: a container that comes back at another address gets
 * requests again, and a stopped one, whose name Docker stops resolving, is passed over at once.
 * Where its address leads nowhere (it stopped within the last second; Docker answers no refusal for
 * it), the connection times out after PROXY_CONNECT_TIMEOUT_MS and the request goes on to the next
 * replica (an `error_page` to a named location per replica). nginx 1.22 (Debian bookworm's, which
 * both stacks run) cannot also keep its upstream groups' failure counts or pooled connections for
 * such names (`server … resolve` needs 1.27.3): so each request connects anew, and a replica is
 * "marked down" only by its name no longer resolving.
 */
import { TIMING, type ServiceName, SERVICES } from "../common/src/config";
import { GATEWAY_HEADER } from "../common/src/internal";

/** The public path prefix of each service (the order service is the one whose prefix is plural). */
export const PUBLIC_PREFIX: Readonly<Record<ServiceName, string>> = { order: "orders", stock: "stock", payment: "payment" };

/**
 * Paths (after the prefix) answered by GET, i.e. reads that may safely be asked of a second replica.
 * Everything else under a prefix is a POST that changes state.
 */
export const READ_PATHS: Readonly<Record<ServiceName, readonly string[]>> = {
  order: ["find/"],
  stock: ["find/"],
  payment: ["find_user/"],
};

/** The path (after the prefix) where the order service takes checkouts. */
export const CHECKOUT_PATH = "checkout/";
/** The path (after the prefix) of every service's batch_init. */
export const BATCH_INIT_PATH = "batch_init/";

/** Requests a client may send over one keep-alive connection before nginx closes it. */
export const KEEPALIVE_REQUESTS = 100_000;
/**
 * Connecting to a replica. The replica's kernel accepts the connection, so a live one accepts within a
 * millisecond however busy it is; no answer by then means its address leads nowhere (a container that
 * has just stopped), and the request goes on to the next replica.
 */
export const PROXY_CONNECT_TIMEOUT_MS = 300;
/**
 * How long nginx keeps a replica's address before asking the resolver again (compose): a replica that
 * comes back at another address takes requests again within this, and one that stopped is passed over
 * without a connection attempt once its name no longer resolves.
 */
export const RESOLVER_VALID_S = 1;
/** Docker's DNS answers at once; a look-up slower than this fails, and the next replica is tried. */
export const RESOLVER_TIMEOUT_S = 1;
/**
 * Any request but checkout: a service answers within its optimistic-transaction budget, plus a peer
 * call for addItem; the margin keeps nginx from cutting off an answer that is about to come.
 */
export const PROXY_READ_TIMEOUT_S = Math.ceil(TIMING.transactionBudgetMs / 1000) + 20;
/**
 * Checkout waits up to `TIMING.checkoutAnswerDeadlineMs` for its saga's outcome before answering;
 * nginx must wait longer than that, or clients would see a 504 for an outcome the service could decide.
 */
export const CHECKOUT_READ_TIMEOUT_S = Math.max(60, Math.ceil(TIMING.checkoutAnswerDeadlineMs / 1000) + 30);
/**
 * A batch_init answers once every entity it creates is written and logged: 26 s for the most orders
 * one may create (BATCH_INIT_MAX, common/src/http.ts) on the 2-core machine while it did other work.
 * Cut off sooner, the client would get a 504 for a batch_init that goes on and completes. Just below
 * the services' idle timeout, which bounds any request, so that nginx answers a JSON 504 first.
 */
export const BATCH_INIT_READ_TIMEOUT_S = TIMING.serviceIdleTimeoutS - 5;
/**
 * Replicas one checkout is sent to at most: the first, and one other if the first died under it. More
 * would only multiply the client's worst-case wait.
 */
export const CHECKOUT_TRIES = 2;
/** Request bodies are empty in this API; anything larger is a mistake or an attack. */
export const CLIENT_MAX_BODY_SIZE = "16k";
/** Per worker; every proxied request holds two connections (client and upstream). */
export const WORKER_CONNECTIONS = 8192;

export type GatewayConfigOptions = {
  /** The port clients connect to. */
  listenPort: number;
  /** The address to listen on; omitted: every interface (inside a container). The local stack passes 127.0.0.1. */
  listenAddress?: string;
  /** `host:port` of every replica of each service, active first. */
  upstreams: Readonly<Record<ServiceName, readonly string[]>>;
  /**
   * The DNS server that resolves replica names (compose: Docker's, 127.0.0.11). Omitted where every
   * replica is an IP address (the local stack).
   */
  resolver?: string;
  /**
   * A folder for nginx's pid file and temp folders. Omitted: nginx's compiled-in paths (right in the
   * nginx image; not writable by a non-root user on a developer machine).
   */
  runtimeDir?: string;
  /** Default "auto" (one worker per core). */
  workerProcesses?: number | "auto";
};

/**
 * When a request that failed at one replica goes on to the next one.
 *
 * - read: GETs change nothing; after any failure (no connection, a reset, a timeout), always.
 * - write, bulk: a POST that reached a replica may have been applied even if no answer came back
 *   (`/stock/subtract` twice takes the stock twice), so it goes on only if no replica was connected
 *   to ($upstream_connect_time holds no time): refused, timed out connecting, or a name that did not
 *   resolve. One that was sent and then lost gets a JSON 502 (or 504 if it timed out).
 * - checkout: the one POST that may be re-sent even after it reached a replica that then died,
 *   because checkout is idempotent by design: a second checkout of the same order joins or finds the
 *   saga of the first and never charges twice. Re-sending turns the death of an order replica
 *   mid-checkout into a slower 200/409 instead of a 502 the client cannot interpret. At most
 *   CHECKOUT_TRIES replicas.
 */
type RetryPolicy = "read" | "checkout" | "write" | "bulk";

/** The nginx.conf text for the given replicas. Pure: the same options always give the same text. */
export function renderGatewayConfig(options: GatewayConfigOptions): string {
  const { listenPort, listenAddress, upstreams, resolver, runtimeDir, workerProcesses = "auto" } = options;
  for (const service of SERVICES) {
    if (upstreams[service].length === 0) throw new Error(`renderGatewayConfig: no upstream for ${service}`);
  }
  const listen = listenAddress ? `${listenAddress}:${listenPort}` : `${listenPort}`;
  const runtime = runtimeDir ? [`pid ${runtimeDir}/nginx.pid;`] : [];
  const tempPaths = runtimeDir
    ? [
        "    # nginx's compiled-in temp folders are not writable by a non-root user; keep them in the state folder.",
        ...["client_body", "proxy", "fastcgi", "uwsgi", "scgi"].map((kind) => `    ${kind}_temp_path ${runtimeDir}/${kind}_temp;`),
        "",
      ]
    : [];

  return [
    "# Rendered by gateway/render.ts: edit that file, not this one.",
    `worker_processes ${workerProcesses};`,
    "# The supervisor (or docker) collects stderr; nginx's own problems appear there, prefixed.",
    "error_log stderr warn;",
    ...runtime,
    "events {",
    `    worker_connections ${WORKER_CONNECTIONS};`,
    "}",
    "",
    "http {",
    "    # Logging every request costs throughput the benchmark measures; the services log what matters.",
    "    access_log off;",
    "    server_tokens off;",
    "    default_type application/json;",
    `    client_max_body_size ${CLIENT_MAX_BODY_SIZE};`,
    "    # Bodies that fit are kept in memory, and so are answers (all small JSON): workers never need the",
    "    # disk, whatever user they run as.",
    `    client_body_buffer_size ${CLIENT_MAX_BODY_SIZE};`,
    "    proxy_max_temp_file_size 0;",
    `    keepalive_requests ${KEEPALIVE_REQUESTS};`,
    ...tempPaths,
    "    # Each request connects to its replica anew (see the top of gateway/render.ts). nginx's default",
    "    # HTTP/1.0 has the replica close the connection first, so that the closing side's TIME_WAIT is",
    "    # the replica's, not on nginx's ephemeral ports, which a thousand connections a second would",
    "    # exhaust within a minute.",
    "    proxy_http_version 1.0;",
    ...(resolver
      ? [
          "    # Replica names are looked up again at most this long after the last look-up (ipv6=off: the",
          "    # container networks are IPv4 only).",
          `    resolver ${resolver} valid=${RESOLVER_VALID_S}s ipv6=off;`,
          `    resolver_timeout ${RESOLVER_TIMEOUT_S}s;`,
        ]
      : []),
    "    # A request that failed at one replica is handed to the next by an error_page, whose own",
    "    # failure has its error_page too.",
    "    recursive_error_pages on;",
    "    # The status of the last replica tried, for the answer to a write that reached it and failed.",
    '    map $upstream_status $failed_status { "~(?<last>[0-9]+)$" $last; default 502; }',
    "    # Marks every request that came through the gateway: the services refuse their internal",
    "    # endpoints to such requests, whatever the path looked like (a second lock behind the one below).",
    `    proxy_set_header ${GATEWAY_HEADER} "1";`,
    "    # The path after the service prefix exactly as the client sent it (still %-encoded), so that",
    "    # a service validates what the client wrote: /stock/find/a%2Fb reaches it as /find/a%2Fb, not /find/a/b.",
    '    map $request_uri $service_path { "~^/[^/?]*(?<rest>/.*)$" $rest; default /; }',
    `    proxy_connect_timeout ${PROXY_CONNECT_TIMEOUT_MS}ms;`,
    `    proxy_read_timeout ${PROXY_READ_TIMEOUT_S}s;`,
    "",
    "    server {",
    `        listen ${listen} backlog=4096;`,
    "",
    "        # Answers nginx produces itself (no replica reachable, timeout, body too large) are JSON too.",
    "        # A service's own error answers pass through untouched (proxy_intercept_errors is off).",
    ...renderErrorPages(),
    "",
    "        # Liveness of the gateway itself (container health checks).",
    '        location = /health { return 200 \'{"status":"ok"}\'; }',
    "",
    "        # Unknown paths.",
    `        location / { return 404 '${errorJson("not_found", "no such path: the gateway serves /orders/, /stock/ and /payment/")}'; }`,
    "",
    "        # No id or number holds a backslash; nginx does not take it for a separator, but a service",
    "        # behind it might (Bun's URL parser does), so a path holding one is refused here.",
    `        location ~ "\\x5c" { return 400 '${errorJson("invalid_input", "a path may not hold a backslash")}'; }`,
    "",
    "        # The saga's internal endpoints (stock and payment steps, their compensations) are for the",
    "        # order service only, which calls the replicas directly. A regex location wins over every",
    "        # prefix location, and it sees the normalised path (%-decoded, dot segments resolved).",
    `        location ~* "^/(${SERVICES.map((s) => PUBLIC_PREFIX[s]).join("|")})/(.*/)?internal(/|$)" {`,
    `            return 404 '${errorJson("not_found", "internal endpoints are not served by the gateway")}';`,
    "        }",
    ...SERVICES.flatMap((service) => renderServiceLocations(service, upstreams[service])),
    "    }",
    "}",
    "",
  ].join("\n");
}

/**
 * The answers nginx makes itself, as JSON. The 4xx are requests it refuses before any service sees
 * them (a malformed %-escape, a method it does not serve, a path or header beyond its buffers); 494
 * is nginx's own code for a header too large, which it answers as 400.
 */
/** Where the gateway's own error pages live. */
const ERROR_PAGES = "/_gateway_error/";

const ERROR_PAGE_TABLE: [caught: number, answered: number, code: string, message: string][] = [
    [400, 400, "invalid_input", "the request is malformed (a bad %-escape in the path, or bad headers)"],
    // A client asking for one of these pages directly (they are internal).
    [404, 404, "not_found", "no such path: the gateway serves /orders/, /stock/ and /payment/"],
    [405, 405, "method_not_allowed", "the gateway does not serve this method"],
    [413, 413, "payload_too_large", `request bodies are limited to ${CLIENT_MAX_BODY_SIZE}`],
    [414, 414, "uri_too_long", "the path is longer than any id allows"],
    [494, 400, "invalid_input", "the request headers are too large"],
    [502, 502, "bad_gateway", "no replica of this service answered"],
    [503, 503, "service_unavailable", "no replica of this service is available"],
    [504, 504, "gateway_timeout", "the service did not answer in time"],
];

/** A replica could not be reached (502) or did not answer in time (504): the statuses failover takes over. */
const FAILOVER_STATUSES = [502, 504];

/**
 * The `error_page` for the gateway's own answers but `except`, each to its page. A location that sets
 * any error_page inherits none from the server, so a proxying location names them all again.
 */
function errorPageDirectives(indent: string, except: readonly number[] = []): string[] {
  const caught = ERROR_PAGE_TABLE.map(([code]) => code).filter((code) => !except.includes(code));
  return [`${indent}error_page ${caught.join(" ")} ${ERROR_PAGES}$status;`];
}

function renderErrorPages(): string[] {
  // Pages by path, not named locations: nginx refuses a named location to a request whose line it
  // could not parse (it answered 500). `internal` keeps clients from asking for a page directly.
  return [
    ...errorPageDirectives("        "),
    ...ERROR_PAGE_TABLE.map(
      ([caught, answered, code, message]) => `        location = ${ERROR_PAGES}${caught} { internal; return ${answered} '${errorJson(code, message)}'; }`,
    ),
  ];
}

function renderServiceLocations(service: ServiceName, replicas: readonly string[]): string[] {
  const prefix = PUBLIC_PREFIX[service];
  const location = (path: string, policy: RetryPolicy, exact = false): string[] =>
    proxyTo(`location ${exact ? "= " : ""}/${prefix}/${path}`, service, policy, replicas, 0);
  /**
   * A prefix location ending in a slash makes nginx answer its path without the slash with a 301 to
   * the slashed one; clients that count any non-4xx checkout as a success would take that for a
   * payment. So each such path gets an exact location of its own, answering 404 as a service would.
   */
  const withoutSlash = (path: string): string[] => [
    `        location = /${prefix}${path ? `/${path.slice(0, -1)}` : ""} { return 404 '${errorJson("not_found", `no such path: try /${prefix}/${path}...`)}'; }`,
  ];
  // Every other path is a write, served by the catch-all location of the prefix.
  const routes: Array<[path: string, policy: RetryPolicy]> = [
    ...READ_PATHS[service].map((path): [string, RetryPolicy] => [path, "read"]),
    [BATCH_INIT_PATH, "bulk"],
    ...(service === "order" ? [[CHECKOUT_PATH, "checkout"] as [string, RetryPolicy]] : []),
  ];
  const policies = [...new Set<RetryPolicy>(["write", "read", ...routes.map(([, policy]) => policy)])];
  return [
    "",
    `        # ${service} service: /${prefix}/x → x at ${replicas.join(", then ")}`,
    ...["", ...routes.map(([path]) => path)].flatMap(withoutSlash),
    ...location("", "write"),
    ...location("health", "read", true),
    ...routes.flatMap(([path, policy]) => location(path, policy)),
    // The next replicas, one named location each per policy, shared by the routes of that policy.
    ...policies.flatMap((policy) =>
      replicas.slice(1, triesOf(policy, replicas)).flatMap((_, k) => proxyTo(`location ${standbyName(service, policy, k + 1)}`, service, policy, replicas, k + 1)),
    ),
  ];
}

const triesOf = (policy: RetryPolicy, replicas: readonly string[]) => (policy === "checkout" ? Math.min(CHECKOUT_TRIES, replicas.length) : replicas.length);
const standbyName = (service: ServiceName, policy: RetryPolicy, index: number) => `@${service}_${policy}_${index + 1}`;

/**
 * A location that proxies to replica `index` of a service. If it cannot be reached, or fails in a
 * way its policy allows to retry, the request goes on to the next replica's named location.
 */
function proxyTo(head: string, service: ServiceName, policy: RetryPolicy, replicas: readonly string[], index: number): string[] {
  const next = index + 1 < triesOf(policy, replicas) ? standbyName(service, policy, index + 1) : undefined;
  const retried = index > 0 && (policy === "write" || policy === "bulk");
  return [
    `        ${head} {`,
    ...(retried
      ? [
          "            # Sent to a replica before (it was connected to): it may have been applied there; not sent twice.",
          `            if ($upstream_connect_time ~ "[0-9]") { rewrite ^ ${ERROR_PAGES}$failed_status last; }`,
        ]
      : []),
    ...readTimeout(policy).map((line) => `            ${line}`),
    `            proxy_pass http://${replicas[index]}$service_path;`,
    ...(next
      ? [...errorPageDirectives("            ", FAILOVER_STATUSES), `            error_page ${FAILOVER_STATUSES.join(" ")} = ${next};`]
      : errorPageDirectives("            ")),
    "        }",
  ];
}

/** How long a request of each policy may wait for its answer, where that differs from PROXY_READ_TIMEOUT_S. */
function readTimeout(policy: RetryPolicy): string[] {
  switch (policy) {
    case "read":
    case "write":
      return [];
    case "bulk":
      return [`proxy_read_timeout ${BATCH_INIT_READ_TIMEOUT_S}s;`];
    case "checkout":
      return [`proxy_read_timeout ${CHECKOUT_READ_TIMEOUT_S}s;`];
  }
}

/** A JSON error body for an nginx `return` (single-quoted there, so the text must hold no quote). */
function errorJson(error: string, message: string): string {
  if (/['"\\]/.test(message)) throw new Error(`errorJson: quote in message: ${message}`);
  return JSON.stringify({ error, message });
}

if (import.meta.main) {
  const { composeGatewayOptions } = await import("../scripts/lib/topology");
  const out = new URL("./nginx.compose.conf", import.meta.url).pathname;
  await Bun.write(out, renderGatewayConfig(composeGatewayOptions()));
  console.log(`wrote ${out}`);
}
