/**
 * A real browser for tests: Debian's `chromium`, headless, driven over the Chrome DevTools Protocol
 * with Bun's own WebSocket (no driver library, nothing downloaded). scripts/setup.sh installs
 * chromium; without it, openBrowser fails naming the package, so a browser test never passes unseen.
 *
 *   const browser = await openBrowser();
 *   const page = await browser.open(`${gatewayUrl}/dashboard`);
 *   await page.evaluate<string>("document.title");
 *   page.errors;                        // console errors, uncaught exceptions, failed loads
 *   await page.screenshot("shot.png");
 *   await browser.close();
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** The Debian package, and the names its program goes by. */
export const CHROMIUM_PACKAGE = "chromium";
const PROGRAM_NAMES = ["chromium", "chromium-browser", "google-chrome"];
/** Chromium prints its DevTools address within a second or two; this much means it is not starting. */
const START_TIMEOUT_MS = 60_000;
/** One DevTools command; a page's load waits for it. */
const COMMAND_TIMEOUT_MS = 60_000;
/** The window, and so the screenshots, in CSS pixels. */
export const WINDOW = { width: 1000, height: 1100 };

export function findChromium(): string {
  for (const name of PROGRAM_NAMES) {
    const path = Bun.which(name);
    if (path) return path;
  }
  throw new Error(
    `no headless browser: install Debian's ${CHROMIUM_PACKAGE} (apt-get install -y ${CHROMIUM_PACKAGE}; bash scripts/setup.sh does)`,
  );
}

type Pending = {
  resolve: (value: Record<string, unknown>) => void;
  reject: (error: Error) => void;
  timer: ReturnType<typeof setTimeout>;
};
type Listener = (params: Record<string, unknown>, sessionId: string | undefined) => void;

/** One WebSocket to the browser; pages are sessions on it (flattened targets). */
class DevTools {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private readonly listeners = new Map<string, Listener[]>();

  private constructor(private readonly socket: WebSocket) {
    socket.addEventListener("message", (event) => {
      const message = JSON.parse(String(event.data)) as {
        id?: number;
        result?: Record<string, unknown>;
        error?: { message: string };
        method?: string;
        params?: Record<string, unknown>;
        sessionId?: string;
      };
      if (message.id !== undefined) {
        const waiting = this.pending.get(message.id);
        if (!waiting) return;
        this.pending.delete(message.id);
        clearTimeout(waiting.timer);
        if (message.error) waiting.reject(new Error(message.error.message));
        else waiting.resolve(message.result ?? {});
      } else if (message.method) {
        for (const listener of this.listeners.get(message.method) ?? [])
          listener(message.params ?? {}, message.sessionId);
      }
    });
  }

  static async connect(url: string): Promise<DevTools> {
    const socket = new WebSocket(url);
    await new Promise<void>((resolve, reject) => {
      socket.addEventListener("open", () => resolve(), { once: true });
      socket.addEventListener("error", () => reject(new Error(`could not connect to the browser at ${url}`)), {
        once: true,
      });
    });
    return new DevTools(socket);
  }

  send(method: string, params: Record<string, unknown> = {}, sessionId?: string): Promise<Record<string, unknown>> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`the browser did not answer ${method} within ${COMMAND_TIMEOUT_MS} ms`));
      }, COMMAND_TIMEOUT_MS);
      this.pending.set(id, { resolve, reject, timer });
      this.socket.send(JSON.stringify({ id, method, params, ...(sessionId ? { sessionId } : {}) }));
    });
  }

  on(method: string, listener: Listener): void {
    this.listeners.set(method, [...(this.listeners.get(method) ?? []), listener]);
  }

  close(): void {
    this.socket.close();
  }
}

export type Page = {
  /** Console errors, uncaught exceptions and resources that failed to load, as the browser reported them. */
  readonly errors: readonly string[];
  /** The value of a JavaScript expression in the page (awaited if it is a promise). */
  evaluate<T>(expression: string): Promise<T>;
  /** A PNG of the window. */
  screenshot(path: string): Promise<void>;
};

export type Browser = { open(url: string): Promise<Page>; close(): Promise<void> };

export async function openBrowser(): Promise<Browser> {
  const program = findChromium();
  const profile = mkdtempSync(join(tmpdir(), "checkout-chromium-"));
  const child = Bun.spawn(
    [
      program,
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--no-first-run",
      "--no-default-browser-check",
      "--disable-extensions",
      "--disable-background-networking",
      "--disable-component-update",
      `--user-data-dir=${profile}`,
      `--window-size=${WINDOW.width},${WINDOW.height}`,
      "--remote-debugging-address=127.0.0.1",
      "--remote-debugging-port=0",
      "about:blank",
    ],
    { stdin: "ignore", stdout: "ignore", stderr: "pipe" },
  );
  const stopChild = async () => {
    child.kill("SIGKILL");
    await child.exited;
    rmSync(profile, { recursive: true, force: true });
  };
  let devtools: DevTools;
  try {
    devtools = await DevTools.connect(await devtoolsAddress(child.stderr as ReadableStream<Uint8Array>));
  } catch (error) {
    await stopChild();
    throw error;
  }

  return {
    async open(url: string): Promise<Page> {
      const { targetId } = (await devtools.send("Target.createTarget", { url: "about:blank" })) as { targetId: string };
      const { sessionId } = (await devtools.send("Target.attachToTarget", { targetId, flatten: true })) as {
        sessionId: string;
      };
      const errors: string[] = [];
      const mine =
        (listener: (params: Record<string, unknown>) => void): Listener =>
        (params, from) =>
          from === sessionId && listener(params);
      devtools.on(
        "Runtime.exceptionThrown",
        mine((p) =>
          errors.push(
            `exception: ${JSON.stringify((p.exceptionDetails as { exception?: { description?: string }; text?: string })?.exception?.description ?? p.exceptionDetails)}`,
          ),
        ),
      );
      devtools.on(
        "Runtime.consoleAPICalled",
        mine((p) => {
          if (p.type === "error" || p.type === "assert") errors.push(`console.${p.type}: ${JSON.stringify(p.args)}`);
        }),
      );
      devtools.on(
        "Log.entryAdded",
        mine((p) => {
          const entry = p.entry as { level: string; text: string; url?: string };
          if (entry.level === "error") errors.push(`${entry.text}${entry.url ? ` (${entry.url})` : ""}`);
        }),
      );
      const send = (method: string, params: Record<string, unknown> = {}) => devtools.send(method, params, sessionId);
      await Promise.all([send("Runtime.enable"), send("Log.enable"), send("Page.enable")]);
      const loaded = new Promise<void>((resolve) =>
        devtools.on(
          "Page.loadEventFired",
          mine(() => resolve()),
        ),
      );
      const navigation = (await send("Page.navigate", { url })) as { errorText?: string };
      if (navigation.errorText) throw new Error(`the browser could not load ${url}: ${navigation.errorText}`);
      await loaded;
      return {
        errors,
        async evaluate<T>(expression: string): Promise<T> {
          const reply = (await send("Runtime.evaluate", { expression, returnByValue: true, awaitPromise: true })) as {
            result: { value?: T };
            exceptionDetails?: { text: string };
          };
          if (reply.exceptionDetails) throw new Error(`${expression}: ${reply.exceptionDetails.text}`);
          return reply.result.value as T;
        },
        async screenshot(path: string): Promise<void> {
          const { data } = (await send("Page.captureScreenshot", { format: "png" })) as { data: string };
          await Bun.write(path, Buffer.from(data, "base64"));
        },
      };
    },
    async close(): Promise<void> {
      await devtools.send("Browser.close").catch(() => {});
      devtools.close();
      await stopChild();
    },
  };
}

/** Reads chromium's stderr until it names its DevTools WebSocket; fails with what it said otherwise. */
async function devtoolsAddress(stderr: ReadableStream<Uint8Array>): Promise<string> {
  const reader = stderr.getReader();
  const decoder = new TextDecoder();
  let said = "";
  const deadline = setTimeout(() => void reader.cancel(), START_TIMEOUT_MS);
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`chromium did not start its DevTools server:\n${said.slice(-2000)}`);
      said += decoder.decode(value, { stream: true });
      const found = /DevTools listening on (ws:\/\/\S+)/.exec(said);
      if (found) {
        // Keep draining, so that chromium never blocks on a full pipe.
        void (async () => {
          while (!(await reader.read().catch(() => ({ done: true }))).done);
        })();
        return found[1]!;
      }
    }
  } finally {
    clearTimeout(deadline);
  }
}
