/**
 * A compose project's container events, as the engine announces them (`docker events`): what waiting
 * on containers listens to instead of asking the engine over and over. Each question to the engine
 * (`docker ps`, `docker inspect`) starts a client and makes the engine walk its containers: asked ten
 * times a second, that took a third of a core from the containers a test measures.
 *
 *   const events = containerEvents(project);   // announced from now on, none missed
 *   process.kill(pid, "SIGKILL");
 *   await events.next((e) => e.service === "stock-1" && e.action === "start", timeoutMs); // or undefined
 *   events.close();
 */
import { ContainerSetupError } from "./commands";

export type ContainerEvent = {
  /** What happened: `start`, `die`, `health_status: healthy`, … */
  action: string;
  /** The container's compose service (its name in compose.yaml). */
  service: string;
  id: string;
};

/** The actions waiting on containers needs: running or not, and healthy or not. */
const ACTIONS = ["start", "die", "health_status"];

export type ContainerEvents = {
  /**
   * The first event that `matches` after the one the last next() returned (or since the stream
   * opened): the stream is read in order, and what comes before the match is passed over. Undefined
   * if there is none within `timeoutMs`.
   */
  next(matches: (event: ContainerEvent) => boolean, timeoutMs: number): Promise<ContainerEvent | undefined>;
  close(): void;
};

/**
 * The project's container events from this moment on: the stream starts at the engine's clock as read
 * now (`--since`), so an event that comes before the engine has the subscription is still announced.
 */
export function containerEvents(project: string): ContainerEvents {
  const since = (Date.now() / 1000).toFixed(3);
  const child = Bun.spawn(
    [
      "docker",
      "events",
      "--since",
      since,
      "--filter",
      "type=container",
      "--filter",
      `label=com.docker.compose.project=${project}`,
      ...ACTIONS.flatMap((action) => ["--filter", `event=${action}`]),
      "--format",
      "{{json .}}",
    ],
    { stdin: "ignore", stdout: "pipe", stderr: "pipe" },
  );
  const seen: ContainerEvent[] = [];
  /** The next() calls waiting for an event to arrive. */
  const waiting = new Set<() => void>();
  const wakeAll = () => {
    for (const wake of waiting) wake();
  };
  let ended: string | undefined;

  void (async () => {
    let buffer = "";
    const decoder = new TextDecoder();
    for await (const chunk of child.stdout) {
      buffer += decoder.decode(chunk, { stream: true });
      for (let newline = buffer.indexOf("\n"); newline >= 0; newline = buffer.indexOf("\n")) {
        const line = buffer.slice(0, newline);
        buffer = buffer.slice(newline + 1);
        const parsed = JSON.parse(line) as {
          Action: string;
          id: string;
          Actor: { Attributes: Record<string, string> };
        };
        seen.push({
          action: parsed.Action,
          id: parsed.id,
          service: parsed.Actor.Attributes["com.docker.compose.service"] ?? "",
        });
      }
      wakeAll();
    }
    ended = `\`docker events\` ended (exit ${await child.exited}): ${(await new Response(child.stderr).text()).trim()}`;
    wakeAll();
  })();

  return {
    async next(matches, timeoutMs) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const at = seen.findIndex(matches);
        if (at >= 0) return seen.splice(0, at + 1).at(-1);
        if (ended !== undefined) throw new ContainerSetupError(ended);
        const left = deadline - Date.now();
        if (left <= 0) return undefined;
        const arrived = Promise.withResolvers<void>();
        waiting.add(arrived.resolve);
        const timer = setTimeout(arrived.resolve, left);
        await arrived.promise;
        clearTimeout(timer);
        waiting.delete(arrived.resolve);
      }
    },
    close() {
      child.kill();
    },
  };
}
