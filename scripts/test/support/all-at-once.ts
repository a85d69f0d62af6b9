/**
 * Sends many POSTs with every one of them in flight at once, and reports each one's status.
 *
 * Bun's fetch holds back requests beyond BUN_CONFIG_MAX_HTTP_REQUESTS (default 256), which it reads
 * once at start-up; a test process cannot raise it for itself. So `postAllAtOnce` runs this file as a
 * child process with the limit raised, hands it the URLs on stdin and reads the answers from stdout
 * (as scripts/bench.ts re-executes itself for the same reason).
 */
import { createSession } from "../../bench/client";
import { runLoad, NETWORK_ERROR } from "../../bench/load";

const MAX_HTTP_REQUESTS_VAR = "BUN_CONFIG_MAX_HTTP_REQUESTS";
/** Room above the requests themselves, as the benchmark leaves. */
const HTTP_REQUEST_HEADROOM = 64;
/** A checkout may wait up to 45 s for its saga's outcome (TIMING.checkoutAnswerDeadlineMs). */
const REQUEST_TIMEOUT_MS = 60_000;
/** No request is started after this; with one request per client, all start at once anyway. */
const LOAD_DURATION_MS = 120_000;

export type AllAtOnceResult = {
  /** Per URL, in order: its HTTP status, or NETWORK_ERROR. */
  statuses: number[];
  /** Non-2xx answers by their JSON `error` code (or `network` / `timeout`). */
  failureCodes: Record<string, number>;
};

export { NETWORK_ERROR };

export async function postAllAtOnce(urls: readonly string[]): Promise<AllAtOnceResult> {
  const child = Bun.spawn([process.execPath, import.meta.path], {
    env: { ...process.env, [MAX_HTTP_REQUESTS_VAR]: String(urls.length + HTTP_REQUEST_HEADROOM) },
    stdin: new Blob([JSON.stringify(urls)]),
    stdout: "pipe",
    stderr: "pipe",
  });
  const [stdout, stderr, code] = await Promise.all([
    new Response(child.stdout).text(),
    new Response(child.stderr).text(),
    child.exited,
  ]);
  if (code !== 0) throw new Error(`all-at-once.ts exited with code ${code}: ${stderr}`);
  return JSON.parse(stdout) as AllAtOnceResult;
}

async function main(): Promise<void> {
  const urls = JSON.parse(await Bun.stdin.text()) as string[];
  const limit = Number(process.env[MAX_HTTP_REQUESTS_VAR] ?? 0);
  if (limit < urls.length) {
    console.error(
      `${MAX_HTTP_REQUESTS_VAR} is ${limit}: fetch would hold back all but that many of ${urls.length} requests`,
    );
    process.exit(2);
  }
  const session = createSession(urls.length);
  try {
    const load = await runLoad({
      urls,
      clients: urls.length,
      durationMs: LOAD_DURATION_MS,
      session,
      method: "POST",
      requestTimeoutMs: REQUEST_TIMEOUT_MS,
    });
    const result: AllAtOnceResult = { statuses: [...load.statuses], failureCodes: load.failureCodes };
    process.stdout.write(JSON.stringify(result));
  } finally {
    session.close();
  }
}

if (import.meta.main) await main();
