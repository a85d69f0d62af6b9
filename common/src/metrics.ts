/**
 * Every Prometheus metric of a service process, defined in one place, and the port that serves them.
 *
 * Code elsewhere records with one-line calls (`metrics.txConflicts.inc()`); nothing here is on a
 * request's way but counter and histogram updates in memory. `GET /metrics` is served on a port of its
 * own (config.ts, metricsPort; service.ts, serveMetrics), never through the gateway, on BIND_ADDRESS,
 * and answers only a caller presenting the internal secret, as the internal endpoints do (Prometheus:
 * `authorization`, see deploy/prometheus.yml).
 */
import type { MiddlewareHandler } from "hono";
import { routePath } from "hono/route";
import { Counter, Gauge, Histogram, Registry } from "prom-client";

export const registry = new Registry();

/** Latency buckets, in seconds: from a Redis round trip on loopback to a checkout waiting out a lease. */
const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
/** Transactions per group commit, steps per call (MAX_STEPS_PER_CALL is 256). */
const SIZE_BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128, 256];

const counter = (name: string, help: string, labelNames: string[] = []) =>
  new Counter({ name, help, labelNames, registers: [registry] });
const histogram = (name: string, help: string, buckets: number[], labelNames: string[] = []) =>
  new Histogram({ name, help, buckets, labelNames, registers: [registry] });

export const metrics = {
  httpRequests: counter("checkout_http_requests_total", "HTTP requests answered, by route, method and status", [
    "route",
    "method",
    "status",
  ]),
  httpDuration: histogram(
    "checkout_http_request_duration_seconds",
    "Time to answer an HTTP request, by route and method",
    LATENCY_BUCKETS,
    ["route", "method"],
  ),

  checkouts: counter("checkout_checkouts_total", "Checkouts answered: paid, or refused with its reason", [
    "outcome",
    "reason",
  ]),
  checkoutsInFlight: new Gauge({
    name: "checkout_checkouts_in_flight",
    help: "Checkout requests not yet answered",
    registers: [registry],
  }),

  sagaStepsSent: counter(
    "checkout_saga_steps_sent_total",
    "Saga steps and compensations sent to a participant, by step",
    ["step"],
  ),
  sagaStepRetries: counter(
    "checkout_saga_step_retries_total",
    "Saga steps sent again after an unknown outcome or a refused compensation",
    ["step"],
  ),
  sagaStepTimeouts: counter(
    "checkout_saga_steps_timed_out_total",
    "Forward steps whose outcome stayed unknown until the forward deadline",
    ["step"],
  ),
  sagaCompensations: counter("checkout_saga_compensations_total", "Compensations applied, by step", ["step"]),
  sagaTakeovers: counter("checkout_saga_takeovers_total", "Sagas taken over from a driver whose lease had run out"),

  /** Its _count is the group commits (one MULTI/EXEC of a batch of transactions) that committed. */
  txBatchSize: histogram("checkout_tx_batch_size", "Transactions per group commit that committed", SIZE_BUCKETS),
  txConflicts: counter("checkout_tx_conflicts_total", "Group commits retried because a watched key changed"),

  /**
   * From a batch's commit until the log writer beside Redis has its lines durable (appended and
   * fdatasync'ed): what the log costs a change. Its _count is the batches that waited.
   */
  logDurableWait: histogram(
    "checkout_log_durable_wait_seconds",
    "Time from a batch's commit until its log lines are durable (the writer's append and fdatasync)",
    LATENCY_BUCKETS,
  ),

  redisRoundTrips: counter(
    "checkout_redis_round_trips_total",
    "Round trips to the service's Redis made by the transaction store",
  ),
};

let processMetricsRegistered = false;

/**
 * The process's own CPU, memory and start time, read only when Prometheus asks. prom-client's
 * collectDefaultMetrics would give more, but under Bun its event-loop and GC monitors cost each
 * process CPU all the time, idle or not, which checkouts would pay for (docs/benchmarks.md#metrics).
 */
export function collectProcessMetrics(service: string): void {
  if (processMetricsRegistered) return;
  processMetricsRegistered = true;
  registry.setDefaultLabels({ service });
  const startedAt = Date.now() / 1000 - process.uptime();
  const gauge = (name: string, help: string, read: () => number) =>
    new Gauge({
      name,
      help,
      registers: [registry],
      collect() {
        this.set(read());
      },
    });
  gauge("process_cpu_seconds_total", "User and system CPU time of the process, in seconds", () => {
    const { user, system } = process.cpuUsage();
    return (user + system) / 1e6;
  });
  gauge("process_resident_memory_bytes", "Resident memory of the process", () => process.memoryUsage().rss);
  gauge("process_heap_bytes", "JavaScript heap in use", () => process.memoryUsage().heapUsed);
  gauge("process_start_time_seconds", "When the process started, in seconds since the epoch", () => startedAt);
}

/**
 * Counts every request and times it, by the route that matched (its pattern, not the path: one series
 * per route, whatever ids are asked for). Registered first, so it sees the final status, errors included.
 */
export const requestMetrics: MiddlewareHandler = async (c, next) => {
  const started = performance.now();
  await next();
  const route = routePath(c, -1);
  metrics.httpRequests.inc({ route, method: c.req.method, status: c.res.status });
  metrics.httpDuration.observe({ route, method: c.req.method }, (performance.now() - started) / 1000);
};

/** The Prometheus text of every metric. */
export const metricsText = () => registry.metrics();

/** The value of a counter or gauge, summed over the label sets that `match` accepts. */
export async function sumOf(
  metric: Counter | Gauge,
  match: (labels: Record<string, string | number>) => boolean = () => true,
): Promise<number> {
  const { values } = await metric.get();
  return values.filter((v) => match(v.labels as Record<string, string | number>)).reduce((sum, v) => sum + v.value, 0);
}

/** The cumulative bucket counts of a histogram (upper bound → observations at or below it), over the label sets `match` accepts. */
export async function bucketsOf(
  metric: Histogram,
  match: (labels: Record<string, string | number>) => boolean = () => true,
): Promise<Map<number, number>> {
  const { values } = await metric.get();
  const buckets = new Map<number, number>();
  for (const v of values) {
    if (!v.metricName?.endsWith("_bucket") || !match(v.labels as Record<string, string | number>)) continue;
    const le = v.labels.le === "+Inf" ? Number.POSITIVE_INFINITY : Number(v.labels.le);
    buckets.set(le, (buckets.get(le) ?? 0) + v.value);
  }
  return buckets;
}
