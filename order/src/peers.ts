/**
 * The order service's HTTP clients of stock and payment. The replicas of a peer are active/standby
 * by default: every call goes to the first one, and to the next only when the one before cannot be
 * reached (every saga call is idempotent, so sending it again elsewhere is safe). One busy process
 * per service batches more transactions per Redis round trip and per fsync than two half-busy ones
 * sharing two cores (docs/benchmarks.md#active-standby-against-round-robin). With
 * PEER_BALANCING=round-robin every replica that can be reached takes calls: each call goes to the one
 * with the fewest calls in flight, in turns among equals, and each replica gets its own
 * STEP_CALLS_IN_FLIGHT. A single URL (a Kubernetes Service, which spreads connections over its pods
 * itself) is the same under either. The answer says whether the outcome is known.
 *
 * A replica that cannot be reached is passed over until it takes connections again (replica.ts).
 *
 * Saga steps travel in batches (common/src/internal.ts): at most STEP_CALLS_IN_FLIGHT calls to a peer
 * are in flight at once; a step made meanwhile waits for the next call and leaves with every other
 * step queued by then. A lone step leaves at once; under load, one HTTP round trip on each side
 * carries many sagas' steps.
 */
import { DEFAULT_BALANCING, type Balancing } from "@checkout/common/config";
import { TIMING } from "@checkout/common/timing";
import { AppError, type ErrorCode, type ErrorStatus } from "@checkout/common/errors";
import { internalAuthorization, MAX_STEPS_PER_CALL, STEPS_PATH, type StepReply } from "@checkout/common/internal";
import { Replica } from "./replica";

export type PeerAnswer =
  | { kind: "ok"; body: Record<string, unknown> }
  /** A 4xx: the peer decided, and will decide the same way again. */
  | { kind: "refused"; error: AppError }
  /** No answer, a timeout, or a 5xx: the call may or may not have taken effect. */
  | { kind: "unknown"; reason: string };

/**
 * Bun's fetch keeps at most 64 idle keep-alive connections per process, over all hosts, and the
 * bound cannot be changed (oven-sh/bun#42608). A process that has more connections open than that
 * closes one as each request ends and opens another for the next: at 64 concurrent checkouts, a new
 * connection per peer call, and sockets pile up in TIME_WAIT (docs/benchmarks.md#bun-fetch-connections).
 * So the calls in flight to each peer are capped such that all of them together never need more
 * connections than the pool keeps; a call over the cap waits for a free connection instead of
 * opening one.
 */
export const FETCH_IDLE_POOL = 64;

/**
 * Step calls in flight to one peer. One: the steps made during a call's round trip all leave in the
 * next, and the peer commits them in one group commit. More calls split the same steps into smaller
 * batches, whose fixed costs are then paid more often (docs/benchmarks.md#step-calls-in-flight).
 */
export const STEP_CALLS_IN_FLIGHT = 1;

/** A FIFO semaphore: at most `capacity` holders at once. */
export class Slots {
  private held = 0;
  private readonly waiting: Array<() => void> = [];

  constructor(readonly capacity: number) {}

  async acquire(): Promise<void> {
    if (this.held < this.capacity) {
      this.held++;
      return;
    }
    await new Promise<void>((resolve) => this.waiting.push(resolve));
  }

  release(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.held--;
  }
}

/**
 * How a status reads to the saga: 2xx done, 4xx refused for good, anything else unknown. A 401 is the
 * peer refusing our internal secret (a deployment whose replicas were given different ones): the
 * step was not looked at, so nothing was decided, and the saga must not answer it as a refusal.
 */
function answerOf(peer: string, status: number, json: Partial<StepReply> & Record<string, unknown>): PeerAnswer {
  if (status >= 200 && status < 300) return { kind: "ok", body: json };
  if (status === 401)
    return { kind: "unknown", reason: `${peer} refused the internal secret: INTERNAL_SECRET differs between replicas` };
  // The participant no longer knows the step's first outcome (its record may have expired): it did not
  // decide it, so the saga must not take it for a refusal (retention.ts).
  if (json.error === "operation_expired")
    return { kind: "unknown", reason: `${peer}: ${json.message ?? "operation expired"}` };
  if (status >= 400 && status < 500) {
    return {
      kind: "refused",
      error: new AppError(status as ErrorStatus, (json.error ?? "not_found") as ErrorCode, String(json.message ?? "")),
    };
  }
  return { kind: "unknown", reason: `${peer} answered ${status}: ${json.message ?? ""}` };
}

type Reply = { status: number; json: Record<string, unknown> } | { status: null; reason: string };

type QueuedStep = { step: Record<string, unknown>; answer: (answer: PeerAnswer) => void };

export class Peer {
  private readonly slots: Slots;
  private readonly replicas: Replica[];
  /** Every call carries the internal secret, which step calls need and reads do not mind. */
  private readonly headers: { get: Record<string, string>; post: Record<string, string> };
  private readonly queued: QueuedStep[] = [];
  private stepCalls = 0;
  /** Step calls in flight at once: STEP_CALLS_IN_FLIGHT per replica that takes calls. */
  private readonly stepCallsCap: number;
  /** Round robin: which replica comes first among those equally busy. */
  private turn = 0;

  constructor(
    readonly name: string,
    baseUrls: readonly string[],
    private readonly session: Bun.FetchSession,
    internalSecret: string,
    connections: number,
    private readonly timeoutMs: number = TIMING.peerCallTimeoutMs,
    stepCallsInFlight: number = STEP_CALLS_IN_FLIGHT,
    private readonly connectTimeoutMs: number = TIMING.peerConnectTimeoutMs,
    probeIntervalMs: number = TIMING.peerProbeIntervalMs,
    private readonly balancing: Balancing = DEFAULT_BALANCING,
    rejoinAfterMs: number = TIMING.peerRejoinAfterMs,
  ) {
    this.slots = new Slots(connections);
    this.replicas = baseUrls.map((url) => new Replica(url, name, connectTimeoutMs, probeIntervalMs, rejoinAfterMs));
    this.stepCallsCap = balancing === "round-robin" ? stepCallsInFlight * this.replicas.length : stepCallsInFlight;
    const authorization = internalAuthorization(internalSecret);
    this.headers = { get: authorization, post: { ...authorization, "content-type": "application/json" } };
  }

  /** The replicas calls currently pass over (for diagnostics and tests). */
  get replicasDown(): string[] {
    return this.replicas.filter((r) => r.isDown).map((r) => r.baseUrl);
  }

  /** The replicas passed over that take connections again, not yet for long enough (for tests). */
  get replicasRejoining(): string[] {
    return this.replicas.filter((r) => r.isRejoining).map((r) => r.baseUrl);
  }

  get = async (path: string): Promise<PeerAnswer> => this.answerOfCall(await this.call("GET", path));

  /** One saga step (an action of the peer, for the attempt `opId`); it leaves in the next call. */
  step = (action: string, opId: string, fields: Record<string, unknown>): Promise<PeerAnswer> => {
    const answered = Promise.withResolvers<PeerAnswer>();
    this.queued.push({ step: { action, op_id: opId, ...fields }, answer: answered.resolve });
    this.sendQueued();
    return answered.promise;
  };

  private sendQueued(): void {
    while (this.stepCalls < this.stepCallsCap && this.queued.length > 0) {
      const batch = this.queued.splice(0, MAX_STEPS_PER_CALL);
      this.stepCalls++;
      void this.sendSteps(batch).finally(() => {
        this.stepCalls--;
        this.sendQueued();
      });
    }
  }

  /** Every step of the batch gets an answer: its own, or the call's when the call failed as a whole. */
  private async sendSteps(batch: readonly QueuedStep[]): Promise<void> {
    const reply = await this.call("POST", STEPS_PATH, { steps: batch.map((queued) => queued.step) });
    const answers = reply.status === 200 ? reply.json.answers : undefined;
    if (Array.isArray(answers) && answers.length === batch.length) {
      for (const [i, queued] of batch.entries()) {
        queued.answer(answerOf(this.name, Number(answers[i]?.status), answers[i] ?? {}));
      }
      return;
    }
    const whole = this.answerOfCall(
      reply,
      `${this.name} answered a call of ${batch.length} steps without their answers`,
    );
    for (const queued of batch) queued.answer(whole);
  }

  /**
   * A call's answer as a whole: unknown when no replica answered, or when a 200 should have carried
   * something else (`missing` says what); otherwise what its status reads as.
   */
  private answerOfCall(reply: Reply, missing?: string): PeerAnswer {
    if (reply.status === null) return { kind: "unknown", reason: reply.reason };
    if (reply.status === 200 && missing) return { kind: "unknown", reason: missing };
    return answerOf(this.name, reply.status, reply.json);
  }

  /**
   * The order in which a call tries the replicas: those marked down last (tried still if every other
   * one fails). Active/standby: in their configured order. Round robin: the least busy first, and
   * among equally busy ones, each in turn. Every call is idempotent, so sending it again is safe.
   */
  private tryOrder(): Replica[] {
    // A lone URL (a Kubernetes Service) is tried twice: a new connection may reach another pod.
    if (this.replicas.length === 1) return [this.replicas[0]!, this.replicas[0]!];
    const up = this.replicas.filter((r) => !r.isDown);
    const down = this.replicas.filter((r) => r.isDown);
    if (this.balancing === "active-standby") return [...up, ...down];
    const start = this.turn++ % this.replicas.length;
    const rotated = [...this.replicas.slice(start), ...this.replicas.slice(0, start)].filter((r) => !r.isDown);
    // A stable sort keeps the rotation among replicas with as many calls in flight.
    return [...rotated.sort((a, b) => a.inFlight - b.inFlight), ...down];
  }

  /**
   * The first replica that answers (see tryOrder); a replica that cannot be reached or does not answer
   * in time passes the call on, and is marked down.
   */
  private async call(method: string, path: string, body?: unknown): Promise<Reply> {
    let reason = "no replica configured";
    await this.slots.acquire();
    try {
      for (const replica of this.tryOrder()) {
        // Abandoned early if, the answer being late, no connection to the replica can be made.
        const unreachable = new AbortController();
        const watchdog = setTimeout(() => {
          void replica
            .reachable()
            .then((ok) => ok || unreachable.abort(new Error(`no connection within ${this.connectTimeoutMs} ms`)));
        }, this.connectTimeoutMs);
        replica.inFlight++;
        try {
          const response = await this.session.fetch(replica.baseUrl + path, {
            method,
            body: body === undefined ? undefined : JSON.stringify(body),
            headers: body === undefined ? this.headers.get : this.headers.post,
            signal: AbortSignal.any([AbortSignal.timeout(this.timeoutMs), unreachable.signal]),
          });
          // A 5xx is the peer's own infrastructure failing; its replicas share that, so stop here too.
          return {
            status: response.status,
            json: (await response.json().catch(() => ({}))) as Record<string, unknown>,
          };
        } catch (err) {
          const why = err instanceof Error ? err.message : String(err);
          reason = `${this.name} at ${replica.baseUrl}: ${why}`;
          // A replica that took the connection but answered late is slow, not unreachable.
          if (!(err instanceof Error && err.name === "TimeoutError")) replica.markDown(why);
        } finally {
          replica.inFlight--;
          clearTimeout(watchdog);
        }
      }
    } finally {
      this.slots.release();
    }
    return { status: null, reason };
  }
}

export type Peers = { stock: Peer; payment: Peer };

export function createPeers(
  stockUrls: readonly string[],
  paymentUrls: readonly string[],
  internalSecret: string,
  balancing: Balancing = DEFAULT_BALANCING,
): Peers {
  const session = new Bun.FetchSession({ keepAlive: { maxIdleSockets: FETCH_IDLE_POOL } });
  // The pool is shared evenly between the two peers, whichever of their replicas the calls go to.
  const perPeer = Math.floor(FETCH_IDLE_POOL / 2);
  const peer = (name: string, urls: readonly string[]) =>
    new Peer(name, urls, session, internalSecret, perPeer, undefined, undefined, undefined, undefined, balancing);
  return { stock: peer("stock", stockUrls), payment: peer("payment", paymentUrls) };
}
