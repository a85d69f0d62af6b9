/**
 * Keeps a set of processes running: spawns each in its own process group (setsid), passes its output
 * on line by line, tells every exit, restarts what dies (ever more slowly while it keeps dying young)
 * and waits until processes answer their health checks. It knows nothing of what the processes are:
 * the stack's Supervisor (supervisor.ts) builds on it with the topology's processes.
 */
import { REPO_ROOT } from "../../../common/src/config";
import { EXIT_POLL_INTERVAL_MS, STOP_TIMEOUT_MS } from "../pidfile";
import { groupMembers, identify, signalGroup, waitUntil, type ProcessIdentity } from "../procfs";
import type { StackEvent } from "./api";
import { forEachLine, type OutputSink } from "./output";
import type { ProcessSpec } from "./specs";

/** First restart of a process that died: soon, but not in a tight loop with whatever killed it. */
export const RESTART_DELAY_MS = 500;
/** A process that keeps dying soon after each start is restarted ever more slowly, up to this. */
export const MAX_RESTART_DELAY_MS = 8_000;
/** A process that ran at least this long before dying is restarted after RESTART_DELAY_MS again. */
export const STABLE_UPTIME_MS = 10_000;
/** Health probes while waiting. */
export const HEALTH_POLL_INTERVAL_MS = 100;
/** Output lines kept per process, for the error message of a process that does not become healthy. */
export const KEPT_OUTPUT_LINES = 50;
/** Lines of a failed process's output shown in an error message. */
const SHOWN_OUTPUT_LINES = 20;

export type Managed = {
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

export abstract class ProcessSupervisor {
  /** Every process name, in start order. */
  readonly names: string[];

  protected readonly managed = new Map<string, Managed>();
  protected readonly output: OutputSink;
  private readonly listeners = new Set<(event: StackEvent) => void>();
  private restartEnabled: boolean;
  protected stopping = false;

  constructor(
    specs: readonly ProcessSpec[],
    output: OutputSink,
    restart: boolean,
    onEvent?: (event: StackEvent) => void,
  ) {
    this.output = output;
    this.restartEnabled = restart;
    if (onEvent) this.listeners.add(onEvent);

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
  }

  /** Records the processes as they are now (called on every start and exit). */
  protected abstract writeRecord(): void;

  // ---- processes --------------------------------------------------------------------------------

  protected spawn(m: Managed): void {
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

  private pump(m: Managed, stream: ReadableStream<Uint8Array>): Promise<void> {
    return forEachLine(stream, (line) => {
      m.lines.push(line);
      if (m.lines.length > KEPT_OUTPUT_LINES) m.lines.shift();
      this.output(`[${m.spec.name}] ${line}`);
    });
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

  protected respawn(m: Managed): void {
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
  protected async waitAllHealthy(
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

  // ---- control ----------------------------------------------------------------------------------

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

  onEvent(listener: (event: StackEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  lastLines(name: string, count = SHOWN_OUTPUT_LINES): string[] {
    return this.get(name).lines.slice(-count);
  }

  // ---- helpers ----------------------------------------------------------------------------------

  protected get(name: string): Managed {
    const m = this.managed.get(name);
    if (!m) throw new Error(`no process named ${name}; the stack has ${this.names.join(", ")}`);
    return m;
  }

  protected say(message: string): void {
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
}
