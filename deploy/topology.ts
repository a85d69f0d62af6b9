/**
 * The shape of a deployment, as pure data: which processes exist, on which ports, and the environment
 * each one is started with. The one home of the topology: the local stack (scripts/lib/stack.ts), the
 * gateway's configuration (gateway/options.ts), compose.yaml and the Kubernetes manifests
 * (deployments.ts) all read it; scripts/test/compose-equivalence.test.ts and
 * kubernetes-manifests.test.ts hold compose.yaml and deploy/k8s/ to it.
 */
import {
  DEFAULT_BALANCING,
  DEFAULT_PORTS,
  METRICS_PORT_SHIFT,
  SERVICES,
  type Balancing,
  type ServiceName,
} from "../common/src/config";

export type Replicas = Record<ServiceName, number>;

export type Ports = {
  gateway: number;
  /** Replica i (1-based) of a service listens on serviceBase + i. */
  serviceBase: Record<ServiceName, number>;
  redis: Record<ServiceName, number>;
};

export type PortOverrides = {
  gateway?: number;
  serviceBase?: Partial<Record<ServiceName, number>>;
  redis?: Partial<Record<ServiceName, number>>;
};

/** `balancing`: how the gateway and the order service spread requests over a service's replicas. */
export type Topology = { readonly replicas: Replicas; readonly ports: Ports; readonly balancing: Balancing };

/** Replica ports are base + i and the bases are 100 apart, so at most 99 replicas fit. */
export const MAX_REPLICAS = 99;
const HIGHEST_PORT = 65_535;

export type ProcessRole = "redis" | "service" | "gateway";
export const GATEWAY_NAME = "gateway";

export function redisName(service: ServiceName): string {
  return `redis-${service}`;
}

export function replicaName(service: ServiceName, index: number): string {
  return `${service}-${index}`;
}

export function resolveReplicas(replicas: number | Partial<Replicas> = 1): Replicas {
  const perService = typeof replicas === "number" ? { order: replicas, stock: replicas, payment: replicas } : replicas;
  const resolved = { order: perService.order ?? 1, stock: perService.stock ?? 1, payment: perService.payment ?? 1 };
  for (const service of SERVICES) {
    const n = resolved[service];
    if (!Number.isInteger(n) || n < 1 || n > MAX_REPLICAS) {
      throw new Error(`replicas of ${service} must be an integer in [1, ${MAX_REPLICAS}], got ${n}`);
    }
  }
  return resolved;
}

/** The default ports shifted by `portOffset`, then any explicit override. */
export function resolvePorts(portOffset = 0, overrides: PortOverrides = {}): Ports {
  if (!Number.isInteger(portOffset)) throw new Error(`port offset must be an integer, got ${portOffset}`);
  const shifted = (
    service: ServiceName,
    table: Record<ServiceName, number>,
    override?: Partial<Record<ServiceName, number>>,
  ) => override?.[service] ?? table[service] + portOffset;
  const map = (table: Record<ServiceName, number>, override?: Partial<Record<ServiceName, number>>) =>
    Object.fromEntries(SERVICES.map((s) => [s, shifted(s, table, override)])) as Record<ServiceName, number>;
  return {
    gateway: overrides.gateway ?? DEFAULT_PORTS.gateway + portOffset,
    serviceBase: map(DEFAULT_PORTS.serviceBase, overrides.serviceBase),
    redis: map(DEFAULT_PORTS.redis, overrides.redis),
  };
}

export function topology(
  replicas: number | Partial<Replicas> = 1,
  portOffset = 0,
  overrides: PortOverrides = {},
  balancing: Balancing = DEFAULT_BALANCING,
): Topology {
  const t = { replicas: resolveReplicas(replicas), ports: resolvePorts(portOffset, overrides), balancing };
  const ports = allPorts(t);
  const bad = ports.filter((p) => p.port < 1 || p.port > HIGHEST_PORT);
  if (bad.length > 0) throw new Error(`ports out of range: ${bad.map((p) => `${p.name}=${p.port}`).join(", ")}`);
  const seen = new Map<number, string>();
  for (const { name, port } of ports) {
    const other = seen.get(port);
    if (other) throw new Error(`port ${port} is given to both ${other} and ${name}`);
    seen.set(port, name);
  }
  return t;
}

export function replicaPort(t: Topology, service: ServiceName, index: number): number {
  return t.ports.serviceBase[service] + index;
}

/** Where a replica serves GET /metrics (common/src/config.ts): never through the gateway. */
export function metricsPort(t: Topology, service: ServiceName, index: number): number {
  return replicaPort(t, service, index) + METRICS_PORT_SHIFT;
}

export function replicaIndexes(t: Topology, service: ServiceName): number[] {
  return Array.from({ length: t.replicas[service] }, (_, i) => i + 1);
}

/** Every process of the topology, in start order: the Redises, stock and payment, order, the gateway. */
export function processes(
  t: Topology,
): { name: string; role: ProcessRole; service?: ServiceName; index?: number; port: number }[] {
  const replicas = (service: ServiceName) =>
    replicaIndexes(t, service).map((index) => ({
      name: replicaName(service, index),
      role: "service" as const,
      service,
      index,
      port: replicaPort(t, service, index),
    }));
  return [
    ...SERVICES.map((service) => ({
      name: redisName(service),
      role: "redis" as const,
      service,
      port: t.ports.redis[service],
    })),
    ...replicas("stock"),
    ...replicas("payment"),
    ...replicas("order"),
    { name: GATEWAY_NAME, role: "gateway" as const, port: t.ports.gateway },
  ];
}

/** Every port a stack listens on: each process's, and each service replica's metrics port. */
export function allPorts(t: Topology): { name: string; port: number }[] {
  return processes(t).flatMap(({ name, port, service, index }) =>
    service !== undefined && index !== undefined
      ? [
          { name, port },
          { name: `${name} metrics`, port: metricsPort(t, service, index) },
        ]
      : [{ name, port }],
  );
}

/** How processes find each other: loopback locally, container names in compose. */
export type Hosts = { redis(service: ServiceName): string; replica(service: ServiceName, index: number): string };
export const LOOPBACK = "127.0.0.1";
export const LOCAL_HOSTS: Hosts = { redis: () => LOOPBACK, replica: () => LOOPBACK };
export const COMPOSE_HOSTS: Hosts = { redis: redisName, replica: replicaName };

export function replicaUrls(t: Topology, service: ServiceName, hosts: Hosts = LOCAL_HOSTS): string[] {
  return replicaIndexes(t, service).map((i) => `http://${hosts.replica(service, i)}:${replicaPort(t, service, i)}`);
}

/** Environment variables the stack sets for every service replica (see common/src/config.ts). */
export const SERVICE_ENV_NAMES = ["PORT", "BIND_ADDRESS", "REDIS_HOST", "REDIS_PORT", "INSTANCE_ID"] as const;
/** The internal secret comes as one of these two (common/src/config.ts). */
export const SECRET_ENV_NAMES = ["INTERNAL_SECRET", "INTERNAL_SECRET_FILE"] as const;

/**
 * Where replicas find the internal secret: its value (the local stack makes one at every start), or
 * the file a deployment's secret is mounted at (compose, Kubernetes).
 */
export type SecretSource = { value: string } | { file: string };

/**
 * Where a replica runs: how it finds the others, what it listens on, its secret. It has no log
 * folder: the log writer beside its Redis writes the service's log (common/src/log-writer.ts).
 */
export type ReplicaPlacement = { hosts: Hosts; bindAddress: string; secret: SecretSource };
/** ...and additionally for the order service, which calls stock and payment replicas directly. */
export const ORDER_ENV_NAMES = ["STOCK_URLS", "PAYMENT_URLS", "PEER_BALANCING"] as const;
/**
 * Variables the services read that the topology deliberately leaves to their defaults: tuning knobs
 * (a value in the caller's environment reaches every replica) and the test-only crash point (set per
 * process by tests, never inherited). compose-equivalence.test.ts fails on any variable the config
 * module reads that is neither set by the topology nor listed here.
 */
export const OPTIONAL_SERVICE_ENV_NAMES = [
  "REDIS_POOL_SIZE",
  "METRICS_PORT",
  "FAULT_POINT",
  "FAULT_DIR",
  "STEP_RECORD_RETENTION_S",
] as const;
/**
 * Settings every replica of a deployment must agree on, taken from the environment of whoever starts
 * it: the local stack passes the caller's value on to every replica, compose interpolates
 * `${NAME:-<the config module's default>}` into every replica's environment.
 */
export const SHARED_SETTING_ENV_NAMES = ["STEP_RECORD_RETENTION_S"] as const;

export function serviceEnv(
  t: Topology,
  service: ServiceName,
  index: number,
  where: ReplicaPlacement,
): Record<string, string> {
  const env: Record<string, string> = {
    PORT: String(replicaPort(t, service, index)),
    BIND_ADDRESS: where.bindAddress,
    REDIS_HOST: where.hosts.redis(service),
    REDIS_PORT: String(t.ports.redis[service]),
    INSTANCE_ID: replicaName(service, index),
    ...("value" in where.secret
      ? { INTERNAL_SECRET: where.secret.value }
      : { INTERNAL_SECRET_FILE: where.secret.file }),
  };
  if (service === "order") {
    env.STOCK_URLS = replicaUrls(t, "stock", where.hosts).join(",");
    env.PAYMENT_URLS = replicaUrls(t, "payment", where.hosts).join(",");
    env.PEER_BALANCING = t.balancing;
  }
  return env;
}

/** The environment of start_redis_with_recovery.sh for one service's Redis and its log writer. */
export function redisEnv(
  t: Topology,
  service: ServiceName,
  where: { bind: string; dataDir: string; logDir: string },
): Record<string, string> {
  return {
    REDIS_PORT: String(t.ports.redis[service]),
    REDIS_DIR: where.dataDir,
    LOG_DIR: where.logDir,
    REDIS_BIND: where.bind,
  };
}

/** Where the gateway finds each service: `host:port` of every replica. */
export function gatewayUpstreams(t: Topology, hosts: Hosts): Record<ServiceName, string[]> {
  const servers = (service: ServiceName) =>
    replicaIndexes(t, service).map((i) => `${hosts.replica(service, i)}:${replicaPort(t, service, i)}`);
  return { order: servers("order"), stock: servers("stock"), payment: servers("payment") };
}
