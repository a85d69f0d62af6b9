/** Health probes: "is this Redis / service / gateway ready for traffic right now?" */
import { createConnection } from "node:net";
import { LOOPBACK } from "../../deploy/topology";

/** One probe's budget; a process that cannot answer a ping this fast is not ready. */
export const HEALTH_PROBE_TIMEOUT_MS = 1_000;

/**
 * Whether a Redis answers PING with PONG (what `redis-cli -p PORT ping` checks). A Redis that is
 * still loading its AOF answers -LOADING and is not ready; one still being recovered has no TCP port.
 */
export function redisPing(port: number, host = LOOPBACK, timeoutMs = HEALTH_PROBE_TIMEOUT_MS): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host, port });
    let answer = "";
    let settled = false;
    const settle = (ok: boolean) => {
      if (settled) return;
      settled = true;
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => settle(false));
    socket.on("connect", () => socket.write("PING\r\n"));
    socket.on("data", (chunk) => {
      answer += chunk.toString("latin1");
      if (answer.includes("\r\n")) settle(answer.startsWith("+PONG"));
    });
    socket.on("error", () => settle(false));
    socket.on("close", () => settle(false));
  });
}

/** Whether GET `url` answers 200. */
export async function httpOk(url: string, timeoutMs = HEALTH_PROBE_TIMEOUT_MS): Promise<boolean> {
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
    await response.arrayBuffer();
    return response.status === 200;
  } catch {
    return false;
  }
}
