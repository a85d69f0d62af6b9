/**
 * What a running stack offers its callers (`bun run up`, the tests, the benchmark): the Stack
 * interface, the options startStack takes, and the events and descriptions it gives back.
 */
import type { Balancing, ServiceName } from "../../../common/src/config";
import type { PortOverrides, Ports, ProcessRole, Replicas } from "../../../deploy/topology";
import type { OutputSink } from "./output";

export type StackEvent =
  | { type: "exit"; name: string; pid: number; code: number | null; signal: string | null; restarting: boolean }
  | { type: "restart"; name: string; pid: number; restarts: number };

export type StackOptions = {
  /** Replicas of each service (one number for all, or per service). Default 1. */
  replicas?: number | Partial<Replicas>;
  /** Shifts every default port by this much, so a private stack can run beside a developer's. Default 0. */
  portOffset?: number;
  /** Explicit ports; win over defaults and portOffset. */
  ports?: PortOverrides;
  /** How the gateway and the order service spread requests over the replicas. Default active-standby. */
  balancing?: Balancing;
  /** Redis data, nginx runtime files, stack.pids. Default <repo>/.state (<repo>/.state/offset-K with a port offset). */
  stateDir?: string;
  /**
   * The services' log folder. Default <repo>/logging for the default state folder, and
   * <stateDir>/logging for any other: a Redis replays its service's log on start, so two stacks
   * sharing a log folder would load each other's data.
   */
  logDir?: string;
  /** Extra environment for every service replica. */
  env?: Record<string, string>;
  /** Extra environment for single processes, by name (e.g. { "order-1": { FAULT_POINT: "..." } }). */
  processEnv?: Record<string, Record<string, string>>;
  /** The main file of a service (absolute, or relative to the repository). Default <service>/src/main.ts. */
  entrypoints?: Partial<Record<ServiceName, string>>;
  /** Restart processes that die. Default true. */
  restart?: boolean;
  /** Receives every output line, prefixed with its process's name. Default: stdout. */
  output?: OutputSink;
  /** Called on every exit and restart. */
  onEvent?: (event: StackEvent) => void;
  /** Overrides SERVICE_HEALTH_TIMEOUT_MS / REDIS_HEALTH_TIMEOUT_MS for start-up. */
  healthTimeoutMs?: number;
};

export type ProcessInfo = {
  name: string;
  role: ProcessRole;
  service?: ServiceName;
  port: number;
  /** For services and the gateway. */
  url?: string;
  /** The supervised process (for a Redis: its start script). Undefined while it is down. */
  pid?: number;
  /** For a Redis: the redis-server itself. */
  redisServerPid?: number;
  restarts: number;
};

export interface Stack {
  readonly gatewayUrl: string;
  /** Base URLs of every replica of each service. */
  readonly urls: Readonly<Record<ServiceName, readonly string[]>>;
  readonly ports: Ports;
  readonly replicas: Replicas;
  readonly stateDir: string;
  readonly logDir: string;
  /**
   * The internal secret of this start (service replicas demand it on internal endpoints and metrics
   * ports); also in stateDir/internal-secret, readable by its owner only, for curl and Prometheus.
   */
  readonly internalSecret: string;
  /** Every process name, in start order. */
  readonly names: readonly string[];
  /** The pid of a running process; for a Redis, the redis-server's (not its start script's). */
  pid(name: string): number | undefined;
  /**
   * Sends a signal. A service gets it alone; the gateway with its whole process group (workers too, as
   * when a container dies); a Redis at its redis-server, after which its start script exits and is
   * restarted. For SIGKILL, SIGTERM, SIGINT and SIGQUIT, resolves once the process has exited.
   */
  kill(name: string, signal?: NodeJS.Signals): Promise<void>;
  /** Resolves once the process (or, without a name, every process) answers its health check. */
  waitHealthy(name?: string, timeoutMs?: number): Promise<void>;
  /** How often a process has been restarted since the stack started. */
  restartCount(name: string): number;
  /** Turns automatic restarts off or on; turning them on restarts whatever is down. */
  setRestart(enabled: boolean): void;
  /** The pid of a service's log writer, which its Redis's start script runs (undefined while none runs). */
  writerPid(service: ServiceName): number | undefined;
  /** Kills a service's Redis, deletes its data folder, restarts it and waits until it is healthy. */
  wipeRedisData(service: ServiceName): Promise<void>;
  /** Subscribes to exits and restarts; returns the unsubscribe function. */
  onEvent(listener: (event: StackEvent) => void): () => void;
  /** The last output lines of a process. */
  lastLines(name: string, count?: number): string[];
  /** Everything about every process, for printing. */
  describe(): ProcessInfo[];
  /** Stops everything it started (SIGTERM, SIGKILL after STOP_TIMEOUT_MS), last started first. */
  stop(): Promise<void>;
}
