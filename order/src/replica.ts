/**
 * One replica of a peer of the order service, and whether calls go to it (peers.ts sends the calls).
 *
 * Failover assumes no refusal. A replica that a call could not reach (refused, reset, its name not
 * resolving, no connection in time) is marked down: calls pass it over, and it is tried again, by a
 * bare connection every TIMING.peerProbeIntervalMs, until connections have succeeded for
 * TIMING.peerRejoinAfterMs (a process just started is still cold; one that crash-loops gets no
 * calls). A call that has had no answer after TIMING.peerConnectTimeoutMs asks the same of its
 * replica; if no connection can be made, the call is abandoned there (its outcome unknown) and goes
 * on to the next replica, instead of waiting out its timeout on an address that leads nowhere (Docker
 * gives no refusal for a stopped container).
 * Names are resolved anew on each connection: the service image keeps Bun's DNS cache to a second.
 */
import { lookup } from "node:dns/promises";
import { connect } from "node:net";

/**
 * Whether a TCP connection to `url`'s host and port can be made within `timeoutMs`; it is closed at
 * once. The name is looked up first, outside the time allowed: what is timed is the connection, which
 * the peer's kernel accepts at once however busy the machine is, not a name server. And a timer that
 * fires late because this process was not scheduled (a loaded machine) lets the I/O already waiting
 * be read first (setImmediate runs after it), so that a connection made in time is not missed.
 */
export async function canConnect(url: URL, timeoutMs: number): Promise<boolean> {
  let address: string;
  try {
    address = (await lookup(url.hostname)).address;
  } catch {
    return false;
  }
  return new Promise((resolve) => {
    const socket = connect({ host: address, port: Number(url.port) || 80 });
    let timer: ReturnType<typeof setTimeout> | undefined;
    const done = (connected: boolean) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(connected);
    };
    timer = setTimeout(() => setImmediate(() => done(false)), timeoutMs);
    socket.once("connect", () => done(true));
    socket.once("error", () => done(false));
  });
}

/** One replica of a peer, and whether calls go to it. */
export class Replica {
  readonly url: URL;
  /** Calls sent to it and not yet answered. */
  inFlight = 0;
  private down = false;
  /** While down: since when connections to it have succeeded (undefined: the last one failed). */
  private reachableSince: number | undefined;
  private probe: Promise<boolean> | undefined;

  constructor(
    readonly baseUrl: string,
    private readonly peer: string,
    private readonly connectTimeoutMs: number,
    private readonly probeIntervalMs: number,
    private readonly rejoinAfterMs: number,
  ) {
    this.url = new URL(baseUrl);
  }

  get isDown(): boolean {
    return this.down;
  }

  /** Down, but taking connections again: it rejoins once it has taken them for rejoinAfterMs. */
  get isRejoining(): boolean {
    return this.down && this.reachableSince !== undefined;
  }

  /** One connection attempt at a time per replica, shared by whoever asks meanwhile. */
  reachable(): Promise<boolean> {
    this.probe ??= canConnect(this.url, this.connectTimeoutMs).finally(() => (this.probe = undefined));
    return this.probe;
  }

  /** Calls pass it over until connections to it have succeeded for rejoinAfterMs. */
  markDown(why: string): void {
    if (this.down) return;
    this.down = true;
    console.error(
      `[peers] ${this.peer} at ${this.baseUrl} unreachable (${why}); calls go to its other replicas until it takes connections`,
    );
    void this.untilReachable();
  }

  private async untilReachable(): Promise<void> {
    for (; ; await Bun.sleep(this.probeIntervalMs)) {
      if (!(await this.reachable())) {
        this.reachableSince = undefined;
        continue;
      }
      this.reachableSince ??= Date.now();
      if (Date.now() - this.reachableSince >= this.rejoinAfterMs) break;
    }
    this.down = false;
    this.reachableSince = undefined;
    console.error(`[peers] ${this.peer} at ${this.baseUrl} takes connections again`);
  }
}
