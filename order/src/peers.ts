/**
 * The order service's HTTP clients of stock and payment. Each call names its replicas; a replica
 * that cannot be reached is skipped for the next one (every saga call is idempotent, so sending it
 * again elsewhere is safe). The answer says whether the outcome is known.
 */
import { TIMING } from "@checkout/common/config";
import { AppError, type ErrorCode, type ErrorStatus } from "@checkout/common/errors";

export type PeerAnswer =
  | { kind: "ok"; body: Record<string, unknown> }
  /** A 4xx: the peer decided, and will decide the same way again. */
  | { kind: "refused"; error: AppError }
  /** No answer, a timeout, or a 5xx: the call may or may not have taken effect. */
  | { kind: "unknown"; reason: string };

/**
 * Bun's fetch keeps at most 64 idle keep-alive connections per process, over all hosts, and the
 * bound cannot be changed (oven-sh/bun#42608). A process that has more connections open than that
 * closes one as each request ends and opens another for the next: at 64 concurrent checkouts that
 * was a new connection per peer call (3 000 sockets in TIME_WAIT after 4 s). So the calls in flight to
 * each peer replica are capped such that all of them together never need more connections than the
 * pool keeps; a call over the cap waits for a free connection instead of opening one.
 */
export const FETCH_IDLE_POOL = 64;

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

export class Peer {
  private nextReplica = 0;
  private readonly slots: Slots[];

  constructor(
    readonly name: string,
    private readonly baseUrls: readonly string[],
    private readonly session: Bun.FetchSession,
    connectionsPerReplica: number,
    private readonly timeoutMs: number = TIMING.peerCallTimeoutMs,
  ) {
    this.slots = baseUrls.map(() => new Slots(connectionsPerReplica));
  }

  get = (path: string) => this.call("GET", path);
  post = (path: string, body?: unknown) => this.call("POST", path, body);

  private async call(method: string, path: string, body?: unknown): Promise<PeerAnswer> {
    let reason = "no replica configured";
    for (let tried = 0; tried < this.baseUrls.length; tried++) {
      const replica = this.nextReplica++ % this.baseUrls.length;
      const base = this.baseUrls[replica]!;
      const slots = this.slots[replica]!;
      await slots.acquire();
      try {
        const response = await this.session.fetch(base + path, {
          method,
          body: body === undefined ? undefined : JSON.stringify(body),
          headers: body === undefined ? undefined : { "content-type": "application/json" },
          signal: AbortSignal.timeout(this.timeoutMs),
        });
        const json = (await response.json().catch(() => ({}))) as Record<string, unknown>;
        if (response.ok) return { kind: "ok", body: json };
        if (response.status >= 400 && response.status < 500) {
          return {
            kind: "refused",
            error: new AppError(response.status as ErrorStatus, String(json.error ?? "not_found") as ErrorCode, String(json.message ?? "")),
          };
        }
        // A 5xx is the peer's own infrastructure failing; its replicas share that, so stop here.
        return { kind: "unknown", reason: `${this.name} answered ${response.status}: ${json.message ?? ""}` };
      } catch (err) {
        reason = `${this.name} at ${base}: ${err instanceof Error ? err.message : String(err)}`;
      } finally {
        slots.release();
      }
    }
    return { kind: "unknown", reason };
  }
}

export type Peers = { stock: Peer; payment: Peer };

export function createPeers(stockUrls: readonly string[], paymentUrls: readonly string[]): Peers {
  const session = new Bun.FetchSession({ keepAlive: { maxIdleSockets: FETCH_IDLE_POOL } });
  const perReplica = Math.max(1, Math.floor(FETCH_IDLE_POOL / (stockUrls.length + paymentUrls.length)));
  return {
    stock: new Peer("stock", stockUrls, session, perReplica),
    payment: new Peer("payment", paymentUrls, session, perReplica),
  };
}
