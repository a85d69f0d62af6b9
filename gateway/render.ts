/**
 * The gateway's nginx.conf, as one pure function of where the replicas are.
 *
 * The local stack renders it into its state folder on every start; `gateway/nginx.compose.conf` is
 * the same function rendered for compose's host names and committed (regenerate it with
 * `bun gateway/render.ts`; scripts/test/compose-equivalence.test.ts fails if the two drift apart).
 *
 * Routing: `/orders/*` → order, `/stock/*` → stock, `/payment/*` → payment, the first path segment
 * stripped. Which requests nginx may re-send to another replica is the one decision here that touches
 * correctness; see `retryPolicy` below.
 *
 * Replicas are active/standby by default: the first replica of a service takes every request, the
 * others stand by for when it dies. On two cores one busy process per service is faster than two
 * half-busy ones (its batches of transactions and log appends are larger;
 * docs/benchmarks.md#active-standby-against-round-robin).
 * The order service calls its peers the same way (order/src/peers.ts). With `balancing: "round-robin"`
 * every replica takes its turn (nginx's default), each benched like the active one when it fails, and
 * all of them stand by as backups: the local stack's `--balancing round-robin`, and Kubernetes, where
 * the gateway's upstream is a headless Service whose every ready pod gateway/run.sh writes in.
 *
 * Failover assumes no refusal. A replica that fails a request (no connection within
 * PROXY_CONNECT_TIMEOUT_MS, a reset, a timeout) is benched for ACTIVE_BENCH_S: requests go straight
 * to the standby meanwhile, and then one request tries it again. So an address that leads nowhere
 * (Docker gives no refusal for a stopped container) costs one request the connect timeout per bench,
 * not every request. Names are resolved when nginx loads its configuration; in compose, the gateway's
 * entrypoint (gateway/run.sh) looks them up in Docker's DNS every second and reloads nginx when an
 * address changes, so that a replica that comes back at another address takes requests again.
 * (Names looked up per request, through `resolver` and a variable, would have no bench and no pooled
 * connections in Debian's nginx 1.22; and Docker's DNS can take seconds to say that a stopped
 * container's name is gone, which every request would then wait for. `server … resolve` needs 1.27.3.)
 */
import { DEFAULT_BALANCING, TIMING, type Balancing, type ServiceName, SERVICES } from "../common/src/config";
import { SERVED_METHODS } from "../common/src/http";

/** The public path prefix of each service (the order service is the one whose prefix is plural). */
export const PUBLIC_PREFIX: Readonly<Record<ServiceName, string>> = {
  order: "orders",
  stock: "stock",
  payment: "payment",
};

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

/** Idle connections to the replicas of one upstream that each nginx worker keeps open for reuse. */
export const UPSTREAM_KEEPALIVE_CONNECTIONS = 128;
/**
 * How long an idle upstream connection is kept. It must stay below the services' own idle timeout
 * (TIMING.serviceIdleTimeoutS): if the service closes first, nginx may send a request on a connection
 * that is being closed, and a POST that is not retried then fails with 502.
 */
export const UPSTREAM_KEEPALIVE_TIMEOUT_S = 5;
/** Requests served over one keep-alive connection (client or upstream) before nginx closes it. */
export const KEEPALIVE_REQUESTS = 100_000;
/**
 * Connecting to a replica. Its kernel accepts the connection, so a live replica accepts within a
 * millisecond however busy it is; no connection by then means its address leads nowhere (a container
 * that stopped), and the request goes on to the next replica.
 */
export const PROXY_CONNECT_TIMEOUT_MS = 300;
/**
 * How long the active replica is passed over after it failed a request: one request in each such
 * period finds out whether it is back. A crashed replica is running again within about two seconds;
 * the rest of the period lets it finish starting before it takes every request again (the order
 * service's peers wait as long, TIMING.peerRejoinAfterMs), while the standby, warm by then, serves.
 * The standbys are never benched, so a service always has a replica to try (with every replica
 * benched, nginx would answer 502 without trying any).
 */
export const ACTIVE_BENCH_S = 5;
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
 * A batch_init answers once every entity it creates is written and logged: tens of seconds for the
 * most orders one may create (BATCH_INIT_MAX, common/src/http.ts; docs/benchmarks.md#batch_init).
 * Cut off sooner, the client would get a 504 for a batch_init that goes on and completes. Just below
 * the services' idle timeout, which bounds any request, so that nginx answers a JSON 504 first.
 */
export const BATCH_INIT_READ_TIMEOUT_S = TIMING.serviceIdleTimeoutS - 5;
/**
 * Attempts for one checkout: the first replica, and one other if the first died under it. More would
 * only multiply the client's worst-case wait.
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
  /** `host:port` of every replica of each service. */
  upstreams: Readonly<Record<ServiceName, readonly string[]>>;
  /**
   * A folder for nginx's pid file and temp folders. Omitted: nginx's compiled-in paths (right in the
   * nginx image; not writable by a non-root user on a developer machine).
   */
  runtimeDir?: string;
  /** Default "auto" (one worker per core). */
  workerProcesses?: number | "auto";
  /** The folder holding gateway/public's files (the pages below). Default: where the gateway's image keeps them. */
  staticRoot?: string;
  /** How requests are spread over a service's replicas; default active-standby. */
  balancing?: Balancing;
};

/** Where gateway/Dockerfile copies gateway/public. */
export const IMAGE_STATIC_ROOT = "/usr/share/checkout/public";

/**
 * The gateway's own pages, served from gateway/public, read-only and the same for everyone: the
 * OpenAPI document (gateway/openapi.ts), its reference page, and the live dashboard (which reads the
 * aggregate figures of GET /orders/stats). No service's internal endpoint or metrics port is among them.
 */
export const PAGES = { openApi: "/openapi.json", docs: "/docs", dashboard: "/dashboard" } as const;

/** The file types of gateway/public. */
const STATIC_TYPES =
  "types { text/html html; text/css css; text/javascript js; application/json json; image/png png; }";

/** The retry policy of a location: when nginx may hand a request that failed to another replica. */
type RetryPolicy = "read" | "checkout" | "write" | "bulk";

/** The nginx.conf text for the given replicas. Pure: the same options always give the same text. */
export function renderGatewayConfig(options: GatewayConfigOptions): string {
  const {
    listenPort,
    listenAddress,
    upstreams,
    runtimeDir,
    workerProcesses = "auto",
    staticRoot = IMAGE_STATIC_ROOT,
    balancing = DEFAULT_BALANCING,
  } = options;
  for (const service of SERVICES) {
    if (upstreams[service].length === 0) throw new Error(`renderGatewayConfig: no upstream for ${service}`);
  }
  const listen = listenAddress ? `${listenAddress}:${listenPort}` : `${listenPort}`;
  const runtime = runtimeDir ? [`pid ${runtimeDir}/nginx.pid;`] : [];
  const tempPaths = runtimeDir
    ? [
        "    # nginx's compiled-in temp folders are not writable by a non-root user; keep them in the state folder.",
        ...["client_body", "proxy", "fastcgi", "uwsgi", "scgi"].map(
          (kind) => `    ${kind}_temp_path ${runtimeDir}/${kind}_temp;`,
        ),
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
    "    # Upstream keep-alive: HTTP/1.1 and no `Connection: close` from the client passed on.",
    "    proxy_http_version 1.1;",
    '    proxy_set_header Connection "";',
    "    # No client header reaches a service: the API carries everything in the method and path, and",
    "    # headers a service's HTTP parser would refuse (too many, too large) are refused here, as JSON.",
    "    proxy_pass_request_headers off;",
    "    # The methods the API uses; any other is answered 405 here, never passed on (a service's parser",
    "    # drops the connection on a method it does not know, which nginx would take for a dead replica).",
    "    # (The gateway's own error pages are exempt: a refusal redirects to one with the method unchanged;",
    "    # `volatile` has the map looked at again after that redirect instead of its first value reused.)",
    `    map "$request_method:$uri" $method_refused { volatile; "~^(${SERVED_METHODS.join("|")}):" 0; "~^[^:]*:${ERROR_PAGES}" 0; default 1; }`,
    "    # HTTP/0.9 (a request line with no version) has no status line or headers: such a client reads",
    "    # the refusal's JSON body alone.",
    `    map "$server_protocol:$uri" $protocol_refused { volatile; "~^:${ERROR_PAGES}" 0; "~^:" 1; default 0; }`,
    "    # The path after the service prefix exactly as the client sent it (still %-encoded), so that",
    "    # a service validates what the client wrote: /stock/find/a%2Fb reaches it as /find/a%2Fb, not /find/a/b.",
    '    map $request_uri $service_path { "~^/[^/?]*(?<rest>/.*)$" $rest; default /; }',
    `    proxy_connect_timeout ${PROXY_CONNECT_TIMEOUT_MS}ms;`,
    `    proxy_read_timeout ${PROXY_READ_TIMEOUT_S}s;`,
    "",
    ...SERVICES.flatMap((service) => renderUpstream(service, upstreams[service], balancing)),
    "    server {",
    `        listen ${listen} backlog=4096;`,
    "",
    "        # Answers nginx produces itself (no replica reachable, timeout, body too large) are JSON too.",
    "        # A service's own error answers pass through untouched (proxy_intercept_errors is off).",
    ...renderErrorPages(),
    "",
    "        if ($method_refused) { return 405; }",
    "        if ($protocol_refused) { return 400; }",
    "",
    "        # Liveness of the gateway itself (container health checks).",
    '        location = /health { return 200 \'{"status":"ok"}\'; }',
    "",
    ...renderPages(staticRoot),
    "",
    "        # Unknown paths.",
    `        location / { return 404 '${errorJson("not_found", `no such path: the gateway serves /orders/, /stock/ and /payment/, and ${PAGES.dashboard}, ${PAGES.docs} and ${PAGES.openApi}`)}'; }`,
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
    ...SERVICES.flatMap((service) => renderServiceLocations(service)),
    "    }",
    "}",
    "",
  ].join("\n");
}

function renderPages(root: string): string[] {
  if (/[\s;'"{}]/.test(root))
    throw new Error(`renderGatewayConfig: the static root may not hold spaces, quotes, braces or ';': ${root}`);
  // A page's own path (no slash) serves its index.html; its folder serves the page's assets.
  const page = (path: string) => [
    `        location = ${path} { root ${root}; ${STATIC_TYPES} try_files ${path}/index.html =404; }`,
    `        location ${path}/ { root ${root}; ${STATIC_TYPES} }`,
  ];
  return [
    "        # The gateway's own pages (gateway/public): the API's document and reference, the dashboard.",
    `        location = ${PAGES.openApi} { root ${root}; ${STATIC_TYPES} }`,
    ...page(PAGES.docs),
    ...page(PAGES.dashboard),
  ];
}

function renderUpstream(service: ServiceName, servers: readonly string[], balancing: Balancing): string[] {
  const benched = `max_fails=1 fail_timeout=${ACTIVE_BENCH_S}s`;
  // Active/standby: every request goes to the first replica; the others (`backup`) get one only when
  // the replicas before them failed it, or while the first is benched (see the top of this file).
  // Round robin: every replica in turn, one that fails benched as the active one is; and every
  // replica again as a backup that is never benched, for when all of them are (nginx would answer
  // 502 without trying any). In Kubernetes run.sh writes each line once per pod of its name.
  const lines =
    balancing === "round-robin"
      ? [
          ...servers.map((server) => `server ${server} ${benched};`),
          ...servers.map((server) => `server ${server} max_fails=0 backup;`),
        ]
      : servers.map((server, i) =>
          i === 0 && servers.length > 1
            ? `server ${server} ${benched};`
            : `server ${server} max_fails=0${i === 0 ? "" : " backup"};`,
        );
  return [
    `    upstream ${service} {`,
    ...lines.map((line) => `        ${line}`),
    `        keepalive ${UPSTREAM_KEEPALIVE_CONNECTIONS};`,
    `        keepalive_timeout ${UPSTREAM_KEEPALIVE_TIMEOUT_S}s;`,
    `        keepalive_requests ${KEEPALIVE_REQUESTS};`,
    "    }",
    "",
  ];
}

/** Where the gateway's own error pages live. */
const ERROR_PAGES = "/_gateway_error/";

/**
 * The answers nginx makes itself, as JSON. The 4xx are requests it refuses before any service sees
 * them (a malformed %-escape, a method it does not serve, a path or header beyond its buffers); 494
 * is nginx's own code for a header too large, which it answers as 400.
 */
function renderErrorPages(): string[] {
  const pages: [caught: number, answered: number, code: string, message: string][] = [
    [400, 400, "invalid_input", "the request is malformed (a bad %-escape in the path, or bad headers)"],
    // A client asking for one of these pages directly (they are internal).
    [
      404,
      404,
      "not_found",
      `no such path: the gateway serves /orders/, /stock/ and /payment/, and ${PAGES.dashboard}, ${PAGES.docs} and ${PAGES.openApi}`,
    ],
    [405, 405, "method_not_allowed", `the API is served with ${SERVED_METHODS.join(", ")} only`],
    [413, 413, "payload_too_large", `request bodies are limited to ${CLIENT_MAX_BODY_SIZE}`],
    [414, 414, "uri_too_long", "the path is longer than any id allows"],
    [494, 400, "invalid_input", "the request headers are too large"],
    [501, 400, "invalid_input", "the Transfer-Encoding is not supported: send chunked, or a Content-Length"],
    [502, 502, "bad_gateway", "no replica of this service answered"],
    [503, 503, "service_unavailable", "no replica of this service is available"],
    [504, 504, "gateway_timeout", "the service did not answer in time"],
    [505, 505, "http_version_not_supported", "the gateway speaks HTTP/1.0 and HTTP/1.1"],
  ];
  // Pages by path, not named locations: nginx refuses a named location to a request whose line it
  // could not parse (it answered 500). `internal` keeps clients from asking for a page directly.
  // A 405 names the methods that are served (RFC 9110, 15.5.6).
  const extra = (answered: number) =>
    answered === 405 ? ` add_header Allow "${SERVED_METHODS.join(", ")}" always;` : "";
  return pages.flatMap(([caught, answered, code, message]) => [
    `        error_page ${caught} ${caught === answered ? "" : `=${answered} `}${ERROR_PAGES}${caught};`,
    `        location = ${ERROR_PAGES}${caught} { internal;${extra(answered)} return ${answered} '${errorJson(code, message)}'; }`,
  ]);
}

function renderServiceLocations(service: ServiceName): string[] {
  const prefix = PUBLIC_PREFIX[service];
  const location = (path: string, policy: RetryPolicy, exact = false): string[] => [
    `        location ${exact ? "= " : ""}/${prefix}/${path} {`,
    ...retryPolicy(policy).map((line) => `            ${line}`),
    `            proxy_pass http://${service}$service_path;`,
    "        }",
  ];
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
  return [
    "",
    `        # ${service} service: /${prefix}/x → http://${service}/x`,
    ...["", ...routes.map(([path]) => path)].flatMap(withoutSlash),
    ...location("", "write"),
    ...location("health", "read", true),
    ...routes.flatMap(([path, policy]) => location(path, policy)),
  ];
}

/**
 * When a request may be handed to another replica after the first one failed.
 *
 * - read: GETs change nothing; retrying on a connection error or a timeout is always safe.
 * - write, bulk: a POST that reached a replica may have been applied even if no answer came back
 *   (`/stock/subtract` twice takes the stock twice), so it is never re-sent: without
 *   `non_idempotent`, nginx passes a POST on only when it could not be sent at all (connection
 *   refused by a dead replica), which is safe. One that was sent and then lost gets a 502.
 * - checkout: the one POST that may be re-sent, even after it reached a replica that then died
 *   (`non_idempotent`), because checkout is idempotent by design: a second checkout of the same order
 *   joins or finds the saga of the first and never charges twice. Re-sending turns the death of an
 *   order replica mid-checkout into a slower 200/409 instead of a 502 the client cannot interpret.
 */
function retryPolicy(policy: RetryPolicy): string[] {
  switch (policy) {
    case "read":
      return ["proxy_next_upstream error timeout;"];
    case "write":
      return ["proxy_next_upstream error timeout;"];
    case "bulk":
      return ["proxy_next_upstream error timeout;", `proxy_read_timeout ${BATCH_INIT_READ_TIMEOUT_S}s;`];
    case "checkout":
      return [
        "proxy_next_upstream error timeout non_idempotent;",
        `proxy_next_upstream_tries ${CHECKOUT_TRIES};`,
        `proxy_read_timeout ${CHECKOUT_READ_TIMEOUT_S}s;`,
      ];
  }
}

/** A JSON error body for an nginx `return` (single-quoted there, so the text must hold no quote). */
function errorJson(error: string, message: string): string {
  if (/['"\\]/.test(message)) throw new Error(`errorJson: quote in message: ${message}`);
  return JSON.stringify({ error, message });
}

/** The committed renderings: compose's gateway image, and Kubernetes' gateway ConfigMap (deploy/k8s/). */
if (import.meta.main) {
  const { composeGatewayOptions, kubernetesGatewayOptions, KUBERNETES_GATEWAY_CONFIG } = await import(
    "../scripts/lib/topology"
  );
  const renderings = [
    [new URL("./nginx.compose.conf", import.meta.url).pathname, composeGatewayOptions()],
    [KUBERNETES_GATEWAY_CONFIG, kubernetesGatewayOptions()],
  ] as const;
  for (const [out, options] of renderings) {
    await Bun.write(out, renderGatewayConfig(options));
    console.log(`wrote ${out}`);
  }
}
