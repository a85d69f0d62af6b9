/** The gateway's bounds and timeouts: nginx's connections, keep-alive, and how long it waits for whom. */
import { TIMING } from "../common/src/timing";

/** The shared memory of one upstream's state (its servers and their failures); a few kilobytes suffice. */
export const UPSTREAM_ZONE_SIZE = "64k";
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
 * that stopped), and the request goes on to the next replica. Every request that reaches the dead
 * replica before the first failure benches it waits this long, so it stays short. nginx handles the
 * events it has read before the timers that expired meanwhile: a gateway that was not scheduled in
 * time still sees the connection that was made.
 */
export const PROXY_CONNECT_TIMEOUT_MS = 100;
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
