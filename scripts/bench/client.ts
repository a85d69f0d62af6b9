/**
 * The benchmark's HTTP client for everything but the measured checkouts: preparing data and reading
 * state back. One keep-alive session per target, bounded concurrency, and errors that name the call.
 */
import type { z } from "zod";

/** A checkout may legitimately wait long for its saga's outcome (the services allow 45 s). */
export const REQUEST_TIMEOUT_MS = 60_000;
/** batch_init of 100 000 entities is one request doing a lot of work. */
export const BATCH_INIT_TIMEOUT_MS = 180_000;
/** Requests in flight while preparing data or reading state back. */
export const SIDE_CONCURRENCY = 64;
/** Reads are idempotent: a read that fails on the network is retried this often before the run fails. */
const READ_ATTEMPTS = 3;
const READ_RETRY_DELAY_MS = 250;

export class ApiError extends Error {
  constructor(
    readonly method: string,
    readonly path: string,
    readonly status: number | "network",
    readonly body: string,
  ) {
    super(`${method} ${path} → ${status}${body ? `: ${body.slice(0, 200)}` : ""}`);
    this.name = "ApiError";
  }
}

/**
 * Bun's fetch keeps at most this many idle keep-alive connections per process (plain HTTP), shared by
 * every session and host; `maxIdleSockets` cannot raise it. With more requests in flight than this,
 * connections are closed as they come back and reopened for the next request (TIME_WAIT piles up;
 * docs/benchmarks.md#bun-fetch-connections).
 */
export const FETCH_IDLE_POOL_LIMIT = 64;

/** A keep-alive session sized so that `concurrency` requests never have to open a new connection (up to FETCH_IDLE_POOL_LIMIT). */
export function createSession(concurrency: number): Bun.FetchSession {
  return new Bun.FetchSession({ keepAlive: { maxIdleSockets: Math.max(concurrency, SIDE_CONCURRENCY) } });
}

export class Api {
  constructor(
    readonly baseUrl: string,
    private readonly session: Bun.FetchSession,
  ) {}

  /** POSTs `path` and parses the 200 body with `schema`; any other status throws an ApiError. */
  async post<S extends z.ZodType>(path: string, schema: S, timeoutMs = REQUEST_TIMEOUT_MS): Promise<z.infer<S>> {
    return schema.parse(await this.send("POST", path, timeoutMs));
  }

  /** GETs `path` (retrying network failures) and parses the body; 404 gives `undefined`. */
  async get<S extends z.ZodType>(path: string, schema: S): Promise<z.infer<S> | undefined> {
    for (let attempt = 1; ; attempt++) {
      try {
        return schema.parse(await this.send("GET", path, REQUEST_TIMEOUT_MS));
      } catch (err) {
        if (err instanceof ApiError && err.status === 404) return undefined;
        const retriable = err instanceof ApiError && (err.status === "network" || err.status >= 500);
        if (!retriable || attempt >= READ_ATTEMPTS) throw err;
        await Bun.sleep(READ_RETRY_DELAY_MS * attempt);
      }
    }
  }

  /** Closes the idle connections; requests still in flight finish. */
  close(): void {
    this.session.close();
  }

  private async send(method: string, path: string, timeoutMs: number): Promise<unknown> {
    let res: Response;
    let text: string;
    try {
      res = await this.session.fetch(this.baseUrl + path, { method, signal: AbortSignal.timeout(timeoutMs) });
      text = await res.text();
    } catch (err) {
      throw new ApiError(method, path, "network", String(err));
    }
    if (res.status !== 200) throw new ApiError(method, path, res.status, text);
    try {
      return JSON.parse(text);
    } catch {
      throw new ApiError(method, path, res.status, `not JSON: ${text}`);
    }
  }
}

/** Runs `fn` over `items` with at most `limit` calls in flight; the first failure rejects the whole. */
export async function forEachLimited<T>(
  items: readonly T[],
  limit: number,
  fn: (item: T, index: number) => Promise<void>,
): Promise<void> {
  let next = 0;
  let failed = false;
  async function worker(): Promise<void> {
    while (!failed && next < items.length) {
      const index = next++;
      try {
        await fn(items[index] as T, index);
      } catch (err) {
        failed = true;
        throw err;
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

/** Like forEachLimited, collecting the results in input order. */
export async function mapLimited<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  const results = new Array<R>(items.length);
  await forEachLimited(items, limit, async (item, index) => {
    results[index] = await fn(item, index);
  });
  return results;
}
