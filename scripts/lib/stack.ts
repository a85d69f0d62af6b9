/**
 * The whole system as plain local processes, supervised: three Redises (each through
 * start_redis_with_recovery.sh), the replicas of stock, payment and order, and nginx in front.
 * Used by `bun run up`, the end-to-end and kill tests, and the benchmark.
 *
 *   const stack = await startStack({ replicas: 2, portOffset: 3000, stateDir, logDir });
 *   await stack.kill("stock-1");          // SIGKILL; the supervisor restarts it
 *   await stack.waitHealthy("stock-1");
 *   await stack.stop();
 *
 * Every process is started in its own process group (setsid): signals from the terminal reach only
 * the supervisor, which stops the rest in order, and a group signal also reaches what a process
 * spawned itself (nginx workers, the redis-server under its start script). Every pid is recorded in
 * stateDir/stack.pids with its start time (see pidfile.ts, procfs.ts).
 */
import { randomBytes } from "node:crypto";
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { isAbsolute, join, resolve } from "node:path";
import { REPO_ROOT, SERVICES, type Balancing, type ServiceName } from "../../common/src/config";
import { PUBLIC_PREFIX } from "../../gateway/paths";
import { renderGatewayConfig } from "../../gateway/render";
import { httpOk, redisPing } from "./health";
import {
  assertNoRunningStack,
  removeStackRecord,
  stopGroup,
  writeStackRecord,
  EXIT_POLL_INTERVAL_MS,
  STOP_TIMEOUT_MS,
  type RecordedProcess,
  type StackRecord,
} from "./pidfile";
import { nginxCommand } from "./nginx";
import { busyPorts } from "./ports";
import { pathFor, requirePrograms, type Programs } from "./prerequisites";
import {
  groupMembers,
  identify,
  isAlive,
  processGroupOf,
  signalGroup,
  signalProcess,
  waitUntil,
  type ProcessIdentity,
} from "./procfs";
import {
  allPorts,
  processes as topologyProcesses,
  redisEnv,
  redisName,
  replicaUrls,
  serviceEnv,
  topology,
  LOCAL_HOSTS,
  LOOPBACK,
  ORDER_ENV_NAMES,
  SECRET_ENV_NAMES,
  SERVICE_ENV_NAMES,
  type PortOverrides,
  type Ports,
  type ProcessRole,
  type Replicas,
  type Topology,
} from "../../deploy/topology";
import { gatewayOptions } from "../../gateway/options";

/** First restart of a process that died: soon, but not in a tight loop with whatever killed it. */
export const RESTART_DELAY_MS = 500;
/** A process that keeps dying soon after each start is restarted ever more slowly, up to this. */
export const MAX_RESTART_DELAY_MS = 8_000;
/** A process that ran at least this long before dying is restarted after RESTART_DELAY_MS again. */
export const STABLE_UPTIME_MS = 10_000;
/** Services, nginx: start-up takes well under a second; this much means something is wrong. */
export const SERVICE_HEALTH_TIMEOUT_MS = 60_000;
/** A Redis opens its port only after replaying its service's log, which grows with the data. */
export const REDIS_HEALTH_TIMEOUT_MS = 180_000;
/** Health probes while waiting. */
export const HEALTH_POLL_INTERVAL_MS = 100;
/** The internal secret's file in the state folder (deploy/prometheus.yml reads it). */
export const INTERNAL_SECRET_FILE = "internal-secret";
/** The internal secret's random bytes (twice as many hex characters). */
const INTERNAL_SECRET_BYTES = 32;
/** kill() waits this long for the process to exit after a terminating signal. */
export const KILL_EXIT_TIMEOUT_MS = 15_000;
/** Output lines kept per process, for the error message of a process that does not become healthy. */
export const KEPT_OUTPUT_LINES = 50;
/** Lines of a failed process's output shown in an error message. */
const SHOWN_OUTPUT_LINES = 20;

export type OutputSink = (line: string) => void;

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

/** A sink that keeps only the last lines in memory: for tests, which show them when something fails. */
export function memoryOutput(maxLines = 500): OutputSink & { lines(): string[] } {
  const lines: string[] = [];
  const sink = (line: string) => {
    lines.push(line);
    if (lines.length > maxLines) lines.splice(0, lines.length - maxLines);
  };
  return Object.assign(sink, { lines: () => [...lines] });
}

export const stdoutOutput: OutputSink = (line) => {
  process.stdout.write(`${line}\n`);
};

/** The default state folder for a port offset: stacks on different ports never share Redis data. */
export function defaultStateDir(portOffset = 0): string {
  return portOffset === 0 ? resolve(REPO_ROOT, ".state") : resolve(REPO_ROOT, ".state", `offset-${portOffset}`);
}

export const DEFAULT_LOG_DIR = resolve(REPO_ROOT, "logging");

/** The default log folder of a stack with this state folder (see StackOptions.logDir). */
export function defaultLogDir(stateDir: string): string {
  return resolve(stateDir) === defaultStateDir(0) ? DEFAULT_LOG_DIR : join(resolve(stateDir), "logging");
}

export async function startStack(options: StackOptions = {}): Promise<Stack> {
  const programs = requirePrograms();
  const t = topology(options.replicas ?? 1, options.portOffset ?? 0, options.ports ?? {}, options.balancing);
  const stateDir = resolve(options.stateDir ?? defaultStateDir(options.portOffset ?? 0));
  const logDir = resolve(options.logDir ?? defaultLogDir(stateDir));
  mkdirSync(stateDir, { recursive: true });
  mkdirSync(logDir, { recursive: true });

  assertNoRunningStack(stateDir);
  const busy = await busyPorts(allPorts(t));
  if (busy.length > 0) {
    throw new Error(
      `ports already in use: ${busy.map((p) => `${p.port} (${p.name})`).join(", ")}. ` +
        "Another stack may be running (`bun run down`), or pick other ports with --port-offset.",
    );
  }

  const supervisor = new Supervisor(t, programs, { ...options, stateDir, logDir });
  await supervisor.start();
  return supervisor;
}

type ProcessSpec = {
  name: string;
  role: ProcessRole;
  service?: ServiceName;
  port: number;
  url?: string;
  command: string[];
  env: Record<string, string>;
  healthy: () => Promise<boolean>;
  /** What the health check asks, for error messages. */
  healthDescription: string;
  healthTimeoutMs: number;
};

type Managed = {
  spec: ProcessSpec;
  child?: ReturnType<typeof Bun.spawn>;
  identity?: ProcessIdentity;
  /** Resolves once the current incarnation has exited and its group is cleaned up. */
  exited: Promise<void>;
  restarts: number;
  exits: number;
  startedAt: number;
  /** The next restart's delay; doubles while the process keeps dying young. */
  restartDelayMs: number;
  restartTimer?: ReturnType<typeof setTimeout>;
  /** Held down on purpose (wipeRedisData): no automatic restart. */
  held: boolean;
  lines: string[];
};

class Supervisor implements Stack {
  readonly gatewayUrl: string;
  readonly urls: Record<ServiceName, string[]>;
  readonly ports: Ports;
  readonly replicas: Replicas;
  readonly stateDir: string;
  readonly logDir: string;
  readonly internalSecret: string;
  readonly names: string[];

  private readonly managed = new Map<string, Managed>();
  /** Start order, tier by tier: a tier starts once the one before it is healthy. */
  private readonly tiers: string[][];
  private readonly output: OutputSink;
  private readonly listeners = new Set<(event: StackEvent) => void>();
  private restartEnabled: boolean;
  private stopping = false;
  private stopped: Promise<void> | undefined;
  private status: StackRecord["status"] = "starting";

  constructor(
    private readonly t: Topology,
    private readonly programs: Programs,
    private readonly options: StackOptions & { stateDir: string; logDir: string },
  ) {
    this.stateDir = options.stateDir;
    this.logDir = options.logDir;
    // A fresh internal secret every start, known only to this stack's service replicas (and kept by
    // each restart of one, which reuses its spec), and to whoever may read the state folder's file.
    this.internalSecret = randomBytes(INTERNAL_SECRET_BYTES).toString("hex");
    writeFileSync(join(this.stateDir, INTERNAL_SECRET_FILE), `${this.internalSecret}\n`, { mode: 0o600 });
    this.ports = t.ports;
    this.replicas = t.replicas;
    this.gatewayUrl = `http://${LOOPBACK}:${t.ports.gateway}`;
    this.urls = { order: replicaUrls(t, "order"), stock: replicaUrls(t, "stock"), payment: replicaUrls(t, "payment") };
    this.output = options.output ?? stdoutOutput;
    this.restartEnabled = options.restart ?? true;
    if (options.onEvent) this.listeners.add(options.onEvent);

    const specs = this.buildSpecs();
    for (const spec of specs) {
      this.managed.set(spec.name, {
        spec,
        exited: Promise.resolve(),
        restarts: 0,
        exits: 0,
        startedAt: 0,
        restartDelayMs: RESTART_DELAY_MS,
        held: false,
        lines: [],
      });
    }
    this.names = specs.map((s) => s.name);
    const namesOf = (predicate: (s: ProcessSpec) => boolean) => specs.filter(predicate).map((s) => s.name);
    // Order calls stock and payment, so it comes after them; the gateway's health check needs all three.
    this.tiers = [
      namesOf((s) => s.role === "redis"),
      namesOf((s) => s.role === "service" && s.service !== "order"),
      namesOf((s) => s.role === "service" && s.service === "order"),
      namesOf((s) => s.role === "gateway"),
    ];
  }

  // ---- start-up ---------------------------------------------------------------------------------

  async start(): Promise<void> {
    this.writeRecord();
    try {
      for (const tier of this.tiers) {
        for (const name of tier) this.spawn(this.get(name));
        await this.waitAllHealthy(tier, { failOnExit: true });
      }
    } catch (error) {
      await this.stop();
      throw error;
    }
    this.status = "ready";
    this.writeRecord();
  }

  private buildSpecs(): ProcessSpec[] {
    const { t, programs, options } = this;
    const inherited = { ...process.env } as Record<string, string>;
    // The topology owns these, and a crash point is set per process by tests: a value left in the
    // caller's shell must not leak into a replica. Tuning knobs (REDIS_POOL_SIZE, ...) do pass through.
    for (const name of [
      ...SERVICE_ENV_NAMES,
      ...ORDER_ENV_NAMES,
      "FAULT_POINT",
      "FAULT_POINT_ON_SIGNAL",
      "FAULT_DIR",
      "LOG_DIR",
      "REDIS_DIR",
      "REDIS_BIND",
      "REDIS_SOCKET",
      ...SECRET_ENV_NAMES,
    ]) {
      delete inherited[name];
    }
    const internalSecret = this.internalSecret;
    inherited.PATH = pathFor(programs, join(this.stateDir, "bin"));
    // Where a crash point records that it fired (faults.ts): this stack's own, kept across restarts.
    inherited.FAULT_DIR = this.stateDir;
    const perProcess = (name: string) => options.processEnv?.[name] ?? {};
    const nginxDir = join(this.stateDir, "nginx");

    return topologyProcesses(t).map(({ name, role, service, index, port }): ProcessSpec => {
      if (role === "redis" && service) {
        return {
          name,
          role,
          service,
          port,
          command: [programs.bash, join(REPO_ROOT, "start_redis_with_recovery.sh"), service],
          env: {
            ...inherited,
            ...redisEnv(t, service, { bind: LOOPBACK, dataDir: this.redisDataDir(service), logDir: this.logDir }),
            ...perProcess(name),
          },
          healthy: () => redisPing(port),
          healthDescription: `PING on port ${port}`,
          healthTimeoutMs: options.healthTimeoutMs ?? REDIS_HEALTH_TIMEOUT_MS,
        };
      }
      if (role === "service" && service && index) {
        const url = `http://${LOOPBACK}:${port}`;
        const entry = options.entrypoints?.[service] ?? join(service, "src", "main.ts");
        return {
          name,
          role,
          service,
          port,
          url,
          command: [programs.bun, isAbsolute(entry) ? entry : join(REPO_ROOT, entry)],
          env: {
            ...inherited,
            ...serviceEnv(t, service, index, {
              hosts: LOCAL_HOSTS,
              bindAddress: LOOPBACK,
              secret: { value: internalSecret },
            }),
            ...options.env,
            ...perProcess(name),
          },
          healthy: () => httpOk(`${url}/health`),
          healthDescription: `GET ${url}/health`,
          healthTimeoutMs: options.healthTimeoutMs ?? SERVICE_HEALTH_TIMEOUT_MS,
        };
      }
      const confPath = join(nginxDir, "nginx.conf");
      mkdirSync(nginxDir, { recursive: true });
      writeFileSync(
        confPath,
        renderGatewayConfig({
          listenPort: port,
          listenAddress: LOOPBACK,
          ...gatewayOptions(t, LOCAL_HOSTS),
          runtimeDir: nginxDir,
          staticRoot: join(REPO_ROOT, "gateway", "public"),
        }),
      );
      const healthUrls = SERVICES.map((s) => `${this.gatewayUrl}/${PUBLIC_PREFIX[s]}/health`);
      return {
        name,
        role,
        port,
        url: this.gatewayUrl,
        command: nginxCommand(programs.nginx, nginxDir, confPath),
        env: { ...inherited, ...perProcess(name) },
        healthy: async () => (await Promise.all(healthUrls.map((u) => httpOk(u)))).every(Boolean),
        healthDescription: `GET ${healthUrls.join(", ")}`,
        healthTimeoutMs: options.healthTimeoutMs ?? SERVICE_HEALTH_TIMEOUT_MS,
      };
    });
  }

  private redisDataDir(service: ServiceName): string {
    return join(this.stateDir, redisName(service));
  }

  // ---- processes --------------------------------------------------------------------------------

  private spawn(m: Managed): void {
    const { spec } = m;
    const child = Bun.spawn(spec.command, {
      cwd: REPO_ROOT,
      env: spec.env,
      detached: true,
      stdin: "ignore",
      stdout: "pipe",
      stderr: "pipe",
    });
    m.child = child;
    // The start time is fixed at fork, so reading it now is exact even if the exec has not happened yet.
    m.identity = identify(child.pid) ?? { pid: child.pid, startTime: -1 };
    m.startedAt = performance.now();
    const drained = Promise.all([
      this.pump(m, child.stdout as ReadableStream<Uint8Array>),
      this.pump(m, child.stderr as ReadableStream<Uint8Array>),
    ]);
    m.exited = child.exited.then(() => this.onExit(m, child, drained));
    this.writeRecord();
  }

  private async pump(m: Managed, stream: ReadableStream<Uint8Array>): Promise<void> {
    const decoder = new TextDecoder();
    let pending = "";
    const emit = (line: string) => {
      m.lines.push(line);
      if (m.lines.length > KEPT_OUTPUT_LINES) m.lines.shift();
      this.output(`[${m.spec.name}] ${line}`);
    };
    try {
      for await (const chunk of stream) {
        pending += decoder.decode(chunk, { stream: true });
        for (let newline = pending.indexOf("\n"); newline >= 0; newline = pending.indexOf("\n")) {
          emit(pending.slice(0, newline));
          pending = pending.slice(newline + 1);
        }
      }
    } catch {
      // The pipe broke because the process is gone; what it wrote before is already out.
    }
    pending += decoder.decode();
    if (pending) emit(pending);
  }

  private async onExit(m: Managed, child: ReturnType<typeof Bun.spawn>, drained: Promise<unknown>): Promise<void> {
    const identity = m.identity;
    // Whatever the process left behind in its group (nginx workers after the master was killed, a
    // redis-server whose script was killed) would hold the port its next incarnation needs.
    if (identity && groupMembers(identity.pid).length > 0) {
      signalGroup(identity.pid, "SIGKILL");
      await waitUntil(() => groupMembers(identity.pid).length === 0, STOP_TIMEOUT_MS, EXIT_POLL_INTERVAL_MS);
    }
    // Its last words are read before its exit is told: a process that died starting is reported with
    // what it printed. The group is gone, so the pipes close; the bound is for a stray holder of one.
    await Promise.race([drained, Bun.sleep(STOP_TIMEOUT_MS)]);
    if (m.child !== child) return;
    m.child = undefined;
    m.exits += 1;
    const how = child.signalCode ? `signal ${child.signalCode}` : `code ${child.exitCode}`;
    const restarting = this.shouldRestart(m);
    if (this.stopping) {
      this.say(`${m.spec.name} stopped (${how})`);
    } else {
      const why = restarting ? "restarting" : m.held ? "held down" : "not restarting (restarts are off)";
      this.say(`${m.spec.name} exited (${how}); ${why}`);
    }
    this.emit({
      type: "exit",
      name: m.spec.name,
      pid: child.pid,
      code: child.exitCode,
      signal: child.signalCode as string | null,
      restarting,
    });
    this.writeRecord();
    if (restarting) this.scheduleRestart(m);
  }

  private shouldRestart(m: Managed): boolean {
    return !this.stopping && this.restartEnabled && !m.held;
  }

  private scheduleRestart(m: Managed): void {
    if (performance.now() - m.startedAt >= STABLE_UPTIME_MS) m.restartDelayMs = RESTART_DELAY_MS;
    const delay = m.restartDelayMs;
    m.restartDelayMs = Math.min(delay * 2, MAX_RESTART_DELAY_MS);
    clearTimeout(m.restartTimer);
    m.restartTimer = setTimeout(() => {
      m.restartTimer = undefined;
      if (!this.shouldRestart(m) || m.child) return;
      this.respawn(m);
    }, delay);
  }

  private respawn(m: Managed): void {
    try {
      this.spawn(m);
    } catch (error) {
      this.say(`${m.spec.name} could not be started: ${(error as Error).message}; trying again`);
      this.scheduleRestart(m);
      return;
    }
    m.restarts += 1;
    this.emit({ type: "restart", name: m.spec.name, pid: m.child!.pid, restarts: m.restarts });
  }

  // ---- health -----------------------------------------------------------------------------------

  async waitHealthy(name?: string, timeoutMs?: number): Promise<void> {
    await this.waitAllHealthy(name === undefined ? this.names : [name], { timeoutMs });
  }

  /** Waits for all in parallel; one error names every process that did not make it. */
  private async waitAllHealthy(
    names: readonly string[],
    how: { failOnExit?: boolean; timeoutMs?: number },
  ): Promise<void> {
    const results = await Promise.allSettled(names.map((n) => this.waitOneHealthy(this.get(n), how)));
    const failures = results.flatMap((r) => (r.status === "rejected" ? [(r.reason as Error).message] : []));
    if (failures.length > 0) throw new Error(failures.join("\n\n"));
  }

  private async waitOneHealthy(m: Managed, how: { failOnExit?: boolean; timeoutMs?: number }): Promise<void> {
    const { spec } = m;
    const timeoutMs = how.timeoutMs ?? spec.healthTimeoutMs;
    const exitsBefore = m.exits;
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      if (m.child && (await spec.healthy())) return;
      if (how.failOnExit && m.exits > exitsBefore) throw new Error(this.failure(m, "exited while starting"));
      if (!m.child && !m.restartTimer && !m.held) throw new Error(this.failure(m, "is down and will not be restarted"));
      if (this.stopping) throw new Error(`${spec.name}: the stack is stopping`);
      if (performance.now() >= deadline)
        throw new Error(this.failure(m, `did not become healthy within ${timeoutMs / 1000}s`));
      await Bun.sleep(HEALTH_POLL_INTERVAL_MS);
    }
  }

  private failure(m: Managed, what: string): string {
    const lines = m.lines.slice(-SHOWN_OUTPUT_LINES);
    return (
      `${m.spec.name} ${what} (checked: ${m.spec.healthDescription}). ` +
      (lines.length > 0 ? `Its last output:\n${lines.map((l) => `  | ${l}`).join("\n")}` : "It printed nothing.")
    );
  }

  // ---- the Stack API ----------------------------------------------------------------------------

  pid(name: string): number | undefined {
    const m = this.get(name);
    if (!m.child || !isAlive(m.child.pid)) return undefined;
    if (m.spec.role === "redis" && m.spec.service) return this.redisServerPid(m);
    return m.child.pid;
  }

  /** The redis-server's pid from redis.pid, if it is alive and in this start script's group. */
  private redisServerPid(m: Managed): number | undefined {
    if (!m.child || !m.spec.service) return undefined;
    let pid: number;
    try {
      pid = Number(readFileSync(join(this.redisDataDir(m.spec.service), "redis.pid"), "utf8").trim());
    } catch {
      return undefined;
    }
    // A stale file from the previous incarnation names a pid that is gone or someone else's.
    return Number.isInteger(pid) && isAlive(pid) && processGroupOf(pid) === m.child.pid ? pid : undefined;
  }

  writerPid(service: ServiceName): number | undefined {
    const m = this.get(redisName(service));
    if (!m.child) return undefined;
    let pid: number;
    try {
      pid = Number(readFileSync(join(this.redisDataDir(service), "writer.pid"), "utf8").trim());
    } catch {
      return undefined;
    }
    return Number.isInteger(pid) && isAlive(pid) && processGroupOf(pid) === m.child.pid ? pid : undefined;
  }

  async kill(name: string, signal: NodeJS.Signals = "SIGKILL"): Promise<void> {
    const m = this.get(name);
    const child = m.child;
    if (!child) throw new Error(`${name} is not running`);
    if (m.spec.role === "gateway") {
      signalGroup(child.pid, signal);
    } else if (m.spec.role === "redis") {
      const pid = this.redisServerPid(m);
      if (pid === undefined) throw new Error(`${name}: its redis-server is not running yet (still recovering?)`);
      signalProcess(pid, signal);
    } else {
      signalProcess(child.pid, signal);
    }
    if (!["SIGKILL", "SIGTERM", "SIGINT", "SIGQUIT"].includes(signal)) return;
    const exited = m.exited;
    const timedOut = await Promise.race([exited.then(() => false), Bun.sleep(KILL_EXIT_TIMEOUT_MS).then(() => true)]);
    if (timedOut) throw new Error(`${name} did not exit within ${KILL_EXIT_TIMEOUT_MS / 1000}s of ${signal}`);
  }

  restartCount(name: string): number {
    return this.get(name).restarts;
  }

  setRestart(enabled: boolean): void {
    this.restartEnabled = enabled;
    if (!enabled) {
      for (const m of this.managed.values()) {
        clearTimeout(m.restartTimer);
        m.restartTimer = undefined;
      }
      return;
    }
    for (const m of this.managed.values()) {
      if (!m.child && !m.restartTimer && this.shouldRestart(m)) this.scheduleRestart(m);
    }
  }

  async wipeRedisData(service: ServiceName): Promise<void> {
    const m = this.get(redisName(service));
    m.held = true;
    try {
      clearTimeout(m.restartTimer);
      m.restartTimer = undefined;
      if (m.child) {
        signalGroup(m.child.pid, "SIGKILL");
        await m.exited;
      }
      rmSync(this.redisDataDir(service), { recursive: true, force: true });
      this.say(`${m.spec.name}: data folder ${this.redisDataDir(service)} wiped`);
    } finally {
      m.held = false;
    }
    if (this.stopping) return;
    this.say(`${m.spec.name}: restarting after the wipe`);
    this.respawn(m);
    await this.waitHealthy(m.spec.name);
  }

  onEvent(listener: (event: StackEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  lastLines(name: string, count = SHOWN_OUTPUT_LINES): string[] {
    return this.get(name).lines.slice(-count);
  }

  describe(): ProcessInfo[] {
    return this.names.map((name) => {
      const m = this.get(name);
      const info: ProcessInfo = { name, role: m.spec.role, port: m.spec.port, restarts: m.restarts };
      if (m.spec.service) info.service = m.spec.service;
      if (m.spec.url) info.url = m.spec.url;
      if (m.child) info.pid = m.child.pid;
      const redisServerPid = m.spec.role === "redis" ? this.redisServerPid(m) : undefined;
      if (redisServerPid !== undefined) info.redisServerPid = redisServerPid;
      return info;
    });
  }

  async stop(): Promise<void> {
    this.stopped ??= this.stopEverything();
    return this.stopped;
  }

  private async stopEverything(): Promise<void> {
    this.stopping = true;
    this.status = "stopping";
    for (const m of this.managed.values()) {
      clearTimeout(m.restartTimer);
      m.restartTimer = undefined;
    }
    this.writeRecord();
    // Reverse start order: no request arrives at a process whose peers or Redis are already gone.
    for (const tier of [...this.tiers].reverse()) {
      await Promise.all(
        tier.map(async (name) => {
          const m = this.get(name);
          if (m.identity) await stopGroup(m.identity);
          await m.exited;
        }),
      );
    }
    removeStackRecord(this.stateDir);
  }

  // ---- helpers ----------------------------------------------------------------------------------

  private get(name: string): Managed {
    const m = this.managed.get(name);
    if (!m) throw new Error(`no process named ${name}; the stack has ${this.names.join(", ")}`);
    return m;
  }

  private say(message: string): void {
    this.output(`[supervisor] ${message}`);
  }

  private emit(event: StackEvent): void {
    for (const listener of this.listeners) {
      try {
        listener(event);
      } catch (error) {
        this.say(`an event listener threw: ${(error as Error).message}`);
      }
    }
  }

  private writeRecord(): void {
    const processes: RecordedProcess[] = [];
    for (const name of this.names) {
      const m = this.get(name);
      if (!m.identity) continue;
      const recorded: RecordedProcess = {
        ...m.identity,
        name,
        role: m.spec.role,
        port: m.spec.port,
        command: m.spec.command.join(" "),
      };
      if (m.spec.url) recorded.url = m.spec.url;
      const redisServerPid = m.spec.role === "redis" ? this.redisServerPid(m) : undefined;
      if (redisServerPid !== undefined) recorded.redisServerPid = redisServerPid;
      processes.push(recorded);
    }
    const self = identify(process.pid);
    writeStackRecord(this.stateDir, {
      status: this.status,
      supervisor: self ?? { pid: process.pid, startTime: -1 },
      gatewayUrl: this.gatewayUrl,
      stateDir: this.stateDir,
      logDir: this.logDir,
      processes,
    });
  }
}
