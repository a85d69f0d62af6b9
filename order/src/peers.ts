/**
 * The order service's HTTP clients of stock and payment. The replicas of a peer are active/standby:
 * every call goes to the first one, and to the next only when the one before cannot be reached
 * (every saga call is idempotent, so sending it again elsewhere is safe). One busy process per
 * service batches more transactions per Redis round trip and per fsync than two half-busy ones
 * sharing two cores (README, Benchmark results). The answer says whether the outcome is known.
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
 * each peer are capped such that all of them together never need more connections than the pool
 * keeps; a call over the cap waits for a free connection instead of opening one.
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
  private readonly slots: Slots;

  constructor(
    readonly name: string,
    private readonly baseUrls: readonly string[],
    private readonly session: Bun.FetchSession,
    connections: number,
    private readonly timeoutMs: number = TIMING.peerCallTimeoutMs,
  ) {
    this.slots = new Slots(connections);
  }

  get = (path: string) => this.call("GET", path);
  post = (path: string, body?: unknown) => this.call("POST", path, body);

  private async call(method: string, path: string, body?: unknown): Promise<PeerAnswer> {
    let reason = "no replica configured";
    await this.slots.acquire();
    try {
      for (const base of this.baseUrls) {
        try {
          return await this.send(base, method, path, body);
        } catch (err) {
          reason = `${this.name} at ${base}: ${err instanceof Error ? err.message : String(err)}`;
        }
      }
    } finally {
      this.slots.release();
    }
    return { kind: "unknown", reason };
  }

  /** One replica's answer; throws when it could not be reached or did not answer in time. */
  private async send(base: string, method: string, path: string, body: unknown): Promise<PeerAnswer> {
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
  }
}

export type Peers = { stock: Peer; payment: Peer };

export function createPeers(stockUrls: readonly string[], paymentUrls: readonly string[]): Peers {
  const session = new Bun.FetchSession({ keepAlive: { maxIdleSockets: FETCH_IDLE_POOL } });
  // Calls to one peer use one replica at a time (the standby only while the active one is gone).
  const perPeer = FETCH_IDLE_POOL / 2;
  return {
    stock: new Peer("stock", stockUrls, session, perPeer),
    payment: new Peer("payment", paymentUrls, session, perPeer),
  };
}
