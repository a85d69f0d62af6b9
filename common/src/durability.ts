/**
 * How a service process learns that its changes are durable. Each commit puts its lines into the
 * Redis Stream `log:stream` in its own MULTI, and EXEC answers with the entry's id. The service's log
 * writer (log-writer.ts) appends the stream to the log file in order, fdatasyncs, and publishes the id
 * of the last entry the file now holds on the channel `log:durable`. A process keeps one subscription
 * to that channel, whatever the number of requests waiting: a change is answered once the published
 * position reaches its entry.
 *
 * Positions are compared only within one life of one Redis: when any connection of the process is
 * lost, Redis may have died and come back with less, or empty, and its new stream ids say nothing
 * about the old ones. So every wait begun before a loss ends in 503 redis_unavailable, an unknown
 * outcome, as when EXEC's reply is lost: a saga step is sent again, and meets its first outcome.
 */
import type { Redis } from "ioredis";
import { TIMING } from "./timing";
import { AppError } from "./errors";
import { keys } from "./keyspace";
import { keepSubscribed } from "./redis";

/** A stream entry id, `<milliseconds>-<sequence>`, as numbers: Redis hands them out increasing. */
export type StreamId = readonly [ms: number, seq: number];

export const STREAM_START: StreamId = [0, 0];

export function parseStreamId(id: string): StreamId {
  const dash = id.indexOf("-");
  return dash < 0 ? [Number(id), 0] : [Number(id.slice(0, dash)), Number(id.slice(dash + 1))];
}

export function formatStreamId([ms, seq]: StreamId): string {
  return `${ms}-${seq}`;
}

/** Whether entry `a` comes at or before entry `b` in the stream. */
export function atOrBefore(a: StreamId, b: StreamId): boolean {
  return a[0] < b[0] || (a[0] === b[0] && a[1] <= b[1]);
}

/** The smallest id after `id`: XTRIM MINID keeps entries from it on. */
export function nextStreamId([ms, seq]: StreamId): StreamId {
  return [ms, seq + 1];
}

type Waiter = { entry: StreamId; since: number; resolve: () => void; reject: (error: unknown) => void };

const redisLost = () =>
  new AppError(
    503,
    "redis_unavailable",
    "the database went down before this change was durable; its outcome is unknown: retry",
  );
const writerLate = () =>
  new AppError(
    503,
    "log_unavailable",
    `the service log did not take this change within ${TIMING.durableWaitMs} ms; its outcome is unknown: retry`,
  );

export class DurablePosition {
  private position: StreamId = STREAM_START;
  private waiting: Waiter[] = [];
  private readonly timer: ReturnType<typeof setInterval>;

  /**
   * `subscriber` is a connection of its own (a subscribed connection takes no other command),
   * `client` the shared one; `losses` counts the process's lost connections (see Store).
   */
  constructor(
    private readonly subscriber: Redis,
    private readonly client: Redis,
    private readonly losses: () => number,
  ) {
    subscriber.on("message", (_channel: string, id: string) => this.advance(parseStreamId(id)));
    // Subscribed again after each reconnection; the position is read again below.
    void keepSubscribed(subscriber, keys.durableLog);
    // A message lost while the subscription was being made again is made up for by reading the key,
    // once a second and only while something waits: a cost per process, not per request.
    this.timer = setInterval(() => this.catchUp(), TIMING.durablePositionCheckMs);
  }

  /**
   * Resolves once the log holds the stream entry `entry` durably. `lossesAtRead`: the count of lost
   * connections when the change's WATCH was sent (or its state read); if one is lost since, rejects.
   */
  until(entry: string | StreamId, lossesAtRead: number): Promise<void> {
    const id = typeof entry === "string" ? parseStreamId(entry) : entry;
    if (this.losses() !== lossesAtRead) return Promise.reject(redisLost());
    if (atOrBefore(id, this.position)) return Promise.resolve();
    return new Promise((resolve, reject) => this.waiting.push({ entry: id, since: Date.now(), resolve, reject }));
  }

  /** Resolves once every change committed before the call is durable: the stream's last entry is. */
  async untilCommittedDurable(): Promise<void> {
    const lossesAtRead = this.losses();
    const last = (await this.client.xrevrange(keys.logStream, "+", "-", "COUNT", 1))[0];
    // An empty stream: the writer has written and trimmed everything.
    if (last) await this.until(last[0], lossesAtRead);
  }

  /** Called for every lost connection: the waits begun before it end unknown, and the position is forgotten. */
  connectionLost(): void {
    this.position = STREAM_START;
    const waiting = this.waiting;
    this.waiting = [];
    for (const w of waiting) w.reject(redisLost());
  }

  close(): void {
    clearInterval(this.timer);
    this.subscriber.disconnect();
  }

  private advance(id: StreamId): void {
    if (atOrBefore(id, this.position)) return;
    this.position = id;
    const still: Waiter[] = [];
    for (const w of this.waiting) {
      if (atOrBefore(w.entry, id)) w.resolve();
      else still.push(w);
    }
    this.waiting = still;
  }

  private catchUp(): void {
    if (this.waiting.length === 0) return;
    const losses = this.losses();
    this.client.get(keys.durableLog).then(
      (id) => {
        if (id !== null && this.losses() === losses) this.advance(parseStreamId(id));
      },
      () => {},
    );
    const late = Date.now() - TIMING.durableWaitMs;
    const expired = this.waiting.filter((w) => w.since < late);
    if (expired.length === 0) return;
    this.waiting = this.waiting.filter((w) => w.since >= late);
    for (const w of expired) w.reject(writerLate());
  }
}
