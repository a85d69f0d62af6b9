/**
 * One HTTP/1.1 request whose path goes on the wire byte for byte. `fetch` parses its URL first (a
 * backslash becomes a slash, `..` is resolved), so it cannot send the paths a gateway must be proof
 * against; a client with a socket can.
 */
import { connect } from "node:net";

/** A request to the local gateway that goes this long without a byte of its answer is stuck. */
const RAW_REQUEST_TIMEOUT_MS = 30_000;

export type RawAnswer = { status: number; body: any };

export function rawRequest(baseUrl: string, method: string, rawPath: string, json?: unknown, headers: Record<string, string> = {}): Promise<RawAnswer> {
  const { hostname, port } = new URL(baseUrl);
  const body = json === undefined ? "" : JSON.stringify(json);
  const head = [
    `${method} ${rawPath} HTTP/1.1`,
    `Host: ${hostname}:${port}`,
    "Connection: close",
    ...(json === undefined ? [] : ["Content-Type: application/json"]),
    `Content-Length: ${Buffer.byteLength(body)}`,
    ...Object.entries(headers).map(([name, value]) => `${name}: ${value}`),
  ];
  return new Promise((resolve, reject) => {
    const socket = connect({ host: hostname, port: Number(port) });
    const chunks: Buffer[] = [];
    socket.setTimeout(RAW_REQUEST_TIMEOUT_MS, () => socket.destroy(new Error(`${method} ${rawPath}: no answer within ${RAW_REQUEST_TIMEOUT_MS} ms`)));
    socket.on("connect", () => socket.write(`${head.join("\r\n")}\r\n\r\n${body}`));
    socket.on("data", (chunk: Buffer) => chunks.push(chunk));
    socket.on("error", reject);
    socket.on("close", () => {
      const text = Buffer.concat(chunks).toString("utf8");
      const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(text)?.[1] ?? NaN);
      const [headers = "", payload = ""] = splitOnce(text, "\r\n\r\n");
      const decoded = /^transfer-encoding:\s*chunked/im.test(headers) ? dechunk(payload) : payload;
      let parsed: unknown = decoded;
      try {
        parsed = JSON.parse(decoded);
      } catch {
        // Not JSON: the raw text is the body.
      }
      resolve({ status, body: parsed });
    });
  });
}

function splitOnce(text: string, separator: string): [string, string] {
  const at = text.indexOf(separator);
  return at < 0 ? [text, ""] : [text.slice(0, at), text.slice(at + separator.length)];
}

function dechunk(payload: string): string {
  let out = "";
  let rest = payload;
  for (;;) {
    const lineEnd = rest.indexOf("\r\n");
    if (lineEnd < 0) return out;
    const size = parseInt(rest.slice(0, lineEnd), 16);
    if (!size) return out;
    out += rest.slice(lineEnd + 2, lineEnd + 2 + size);
    rest = rest.slice(lineEnd + 2 + size + 2);
  }
}
