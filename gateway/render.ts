/**
 * The gateway's nginx.conf, as one pure function of where the replicas are.
 *
 * The local stack renders it into its state folder on every start; `gateway/nginx.compose.conf` is
 * the same function rendered for compose's host names and committed (regenerate it with
 * `bun gateway/render.ts`; scripts/test/compose-images.test.ts fails if the two drift apart),
 * and so is deploy/k8s/gateway/nginx.conf for Kubernetes. The options of each deployment are in
 * options.ts, read off the topology (deploy/topology.ts); the paths in paths.ts; the bounds and
 * timeouts in limits.ts; each service's locations in locations.ts.
 *
 * Routing: `/orders/*` → order, `/stock/*` → stock, `/payment/*` → payment, the first path segment
 * stripped. Which requests nginx may re-send to another replica is the one decision here that touches
 * correctness; see `retryPolicy` in locations.ts.
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
import { DEFAULT_BALANCING, type Balancing, type ServiceName, SERVICES } from "../common/src/config";
import { SERVED_METHODS } from "../common/src/http";
import { KUBERNETES_GATEWAY_CONFIG } from "../deploy/deployments";
import {
  ACTIVE_BENCH_S,
  CLIENT_MAX_BODY_SIZE,
  KEEPALIVE_REQUESTS,
  PROXY_CONNECT_TIMEOUT_MS,
  PROXY_READ_TIMEOUT_S,
  UPSTREAM_KEEPALIVE_CONNECTIONS,
  UPSTREAM_ZONE_SIZE,
  UPSTREAM_KEEPALIVE_TIMEOUT_S,
  WORKER_CONNECTIONS,
} from "./limits";
import { errorJson, renderServiceLocations } from "./locations";
import {
  composeGatewayOptions,
  IMAGE_STATIC_ROOT,
  kubernetesGatewayOptions,
  type GatewayConfigOptions,
} from "./options";
import { PAGES, PUBLIC_PREFIX } from "./paths";

/** The file types of gateway/public. */
const STATIC_TYPES =
  "types { text/html html; text/css css; text/javascript js; application/json json; image/png png; }";

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
    `    map "$request_method:$uri" $method_refused { volatile; "~^(${SERVED_METHODS.join("|")}):" 0; ` +
      `"~^[^:]*:${ERROR_PAGES}" 0; default 1; }`,
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
    `        location / { return 404 '${errorJson(
      "not_found",
      "no such path: the gateway serves /orders/, /stock/ and /payment/, " +
        `and ${PAGES.dashboard}, ${PAGES.docs} and ${PAGES.openApi}`,
    )}'; }`,
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
    // Shared by the workers: the first request to find a replica dead benches it for all of them,
    // instead of one request per worker waiting out the connect timeout.
    `        zone ${service} ${UPSTREAM_ZONE_SIZE};`,
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

/** The committed renderings: compose's gateway image, and Kubernetes' gateway ConfigMap (deploy/k8s/). */
if (import.meta.main) {
  const renderings = [
    [new URL("./nginx.compose.conf", import.meta.url).pathname, composeGatewayOptions()],
    [KUBERNETES_GATEWAY_CONFIG, kubernetesGatewayOptions()],
  ] as const;
  for (const [out, options] of renderings) {
    await Bun.write(out, renderGatewayConfig(options));
    console.log(`wrote ${out}`);
  }
}
