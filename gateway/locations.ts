/**
 * Each service's locations in the gateway's configuration: its public prefix mapped to its upstream,
 * and for each path the retry policy, the one decision of the gateway that touches correctness.
 */
import type { ServiceName } from "../common/src/config";
import { BATCH_INIT_READ_TIMEOUT_S, CHECKOUT_READ_TIMEOUT_S, CHECKOUT_TRIES } from "./limits";
import { BATCH_INIT_PATH, CHECKOUT_PATH, PUBLIC_PREFIX, READ_PATHS } from "./paths";

/** The retry policy of a location: when nginx may hand a request that failed to another replica. */
type RetryPolicy = "read" | "checkout" | "write" | "bulk";

export function renderServiceLocations(service: ServiceName): string[] {
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
export function errorJson(error: string, message: string): string {
  if (/['"\\]/.test(message)) throw new Error(`errorJson: quote in message: ${message}`);
  return JSON.stringify({ error, message });
}
