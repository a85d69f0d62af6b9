/**
 * The stack's supervisor: the topology's processes (specs.ts) kept running by a ProcessSupervisor, in
 * tiers at start-up and in reverse at the end, with what the Stack interface adds for a stack of
 * Redises, services and nginx: a Redis's redis-server and log writer, signals aimed at each role,
 * wiping a Redis's data, and the record in stateDir/stack.pids (pidfile.ts) kept up to date.
 */
import { randomBytes } from "node:crypto";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { ServiceName } from "../../../common/src/config";
import { removeStackRecord, stopGroup, writeStackRecord, type RecordedProcess, type StackRecord } from "../pidfile";
import type { Programs } from "../prerequisites";
import { identify, isAlive, processGroupOf, signalGroup, signalProcess } from "../procfs";
import { redisName, replicaUrls, LOOPBACK, type Ports, type Replicas, type Topology } from "../../../deploy/topology";
import type { ProcessInfo, Stack, StackOptions } from "./api";
import { stdoutOutput } from "./output";
import { ProcessSupervisor, type Managed } from "./process-supervisor";
import { buildProcessSpecs, redisDataDir, startTiers } from "./specs";

/** The internal secret's file in the state folder (deploy/prometheus.yml reads it). */
export const INTERNAL_SECRET_FILE = "internal-secret";
/** The internal secret's random bytes (twice as many hex characters). */
const INTERNAL_SECRET_BYTES = 32;
/** kill() waits this long for the process to exit after a terminating signal. */
export const KILL_EXIT_TIMEOUT_MS = 15_000;

export class Supervisor extends ProcessSupervisor implements Stack {
  readonly gatewayUrl: string;
  readonly urls: Record<ServiceName, string[]>;
  readonly ports: Ports;
  readonly replicas: Replicas;
  readonly stateDir: string;
  readonly logDir: string;
  readonly internalSecret: string;

  /** Start order, tier by tier: a tier starts once the one before it is healthy. */
  private readonly tiers: string[][];
  private stopped: Promise<void> | undefined;
  private status: StackRecord["status"] = "starting";

  constructor(t: Topology, programs: Programs, options: StackOptions & { stateDir: string; logDir: string }) {
    // A fresh internal secret every start, known only to this stack's service replicas (and kept by
    // each restart of one, which reuses its spec), and to whoever may read the state folder's file.
    const internalSecret = randomBytes(INTERNAL_SECRET_BYTES).toString("hex");
    writeFileSync(join(options.stateDir, INTERNAL_SECRET_FILE), `${internalSecret}\n`, { mode: 0o600 });
    const gatewayUrl = `http://${LOOPBACK}:${t.ports.gateway}`;
    const specs = buildProcessSpecs(t, programs, options, internalSecret, gatewayUrl);
    super(specs, options.output ?? stdoutOutput, options.restart ?? true, options.onEvent);
    this.stateDir = options.stateDir;
    this.logDir = options.logDir;
    this.internalSecret = internalSecret;
    this.ports = t.ports;
    this.replicas = t.replicas;
    this.gatewayUrl = gatewayUrl;
    this.urls = { order: replicaUrls(t, "order"), stock: replicaUrls(t, "stock"), payment: replicaUrls(t, "payment") };
    this.tiers = startTiers(specs);
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
      pid = Number(readFileSync(join(redisDataDir(this.stateDir, m.spec.service), "redis.pid"), "utf8").trim());
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
      pid = Number(readFileSync(join(redisDataDir(this.stateDir, service), "writer.pid"), "utf8").trim());
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
      rmSync(redisDataDir(this.stateDir, service), { recursive: true, force: true });
      this.say(`${m.spec.name}: data folder ${redisDataDir(this.stateDir, service)} wiped`);
    } finally {
      m.held = false;
    }
    if (this.stopping) return;
    this.say(`${m.spec.name}: restarting after the wipe`);
    this.respawn(m);
    await this.waitHealthy(m.spec.name);
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

  protected override writeRecord(): void {
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
