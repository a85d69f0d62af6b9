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

/** Idle keep-alive connections kept per peer process: above the concurrency we drive, so none churns into TIME_WAIT. */
const MAX_IDLE_SOCKETS = 512;

export class Peer {
  private nextReplica = 0;
  private readonly session = new Bun.FetchSession({ keepAlive: { maxIdleSockets: MAX_IDLE_SOCKETS } });

  constructor(
    readonly name: string,
    private readonly baseUrls: readonly string[],
    private readonly timeoutMs: number = TIMING.peerCallTimeoutMs,
  ) {}

  get = (path: string) => this.call("GET", path);
  post = (path: string, body?: unknown) => this.call("POST", path, body);

  private async call(method: string, path: string, body?: unknown): Promise<PeerAnswer> {
    let reason = "no replica configured";
    for (let tried = 0; tried < this.baseUrls.length; tried++) {
      const base = this.baseUrls[this.nextReplica++ % this.baseUrls.length]!;
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
      }
    }
    return { kind: "unknown", reason };
  }
}

export type Peers = { stock: Peer; payment: Peer };

export function createPeers(stockUrls: readonly string[], paymentUrls: readonly string[]): Peers {
  return { stock: new Peer("stock", stockUrls), payment: new Peer("payment", paymentUrls) };
}
