/**
 * One HTTP/1.1 request whose path goes on the wire byte for byte. `fetch` parses its URL first (a
 * backslash becomes a slash, `..` is resolved), so it cannot send the paths a gateway must be proof
 * against; a client with a socket can.
 */
import { connect } from "node:net";

/** A request to the local gateway that goes this long without a byte of its answer is stuck. */
const RAW_REQUEST_TIMEOUT_MS = 30_000;

export type RawAnswer = {
  /** NaN when the answer has no status line (an HTTP/0.9 answer, or none at all). */
  status: number;
  /** Header names in lower case. */
  headers: Record<string, string>;
  body: any;
};

export function rawRequest(
  baseUrl: string,
  method: string,
  rawPath: string,
  json?: unknown,
  headers: Record<string, string> = {},
): Promise<RawAnswer> {
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
  return rawExchange(baseUrl, `${head.join("\r\n")}\r\n\r\n${body}`);
}

/**
 * Writes `request` to a new connection exactly as given (bytes of its UTF-16 code units below 256 as
 * they are, others as UTF-8) and reads the answer until the server closes the connection.
 */
export function rawExchange(baseUrl: string, request: string): Promise<RawAnswer> {
  const { hostname, port } = new URL(baseUrl);
  // biome-ignore lint/suspicious/noControlCharactersInRegex: the whole Latin-1 range, control characters included
  const bytes = /^[\u0000-\u00ff]*$/.test(request) ? Buffer.from(request, "latin1") : Buffer.from(request, "utf8");
  return new Promise((resolve, reject) => {
    const socket = connect({ host: hostname, port: Number(port) });
    const chunks: Buffer[] = [];
    const what = JSON.stringify(request.slice(0, 80));
    socket.setTimeout(RAW_REQUEST_TIMEOUT_MS, () =>
      socket.destroy(new Error(`${what}: no answer within ${RAW_REQUEST_TIMEOUT_MS} ms`)),
    );
    socket.on("connect", () => socket.write(bytes));
    socket.on("data", (chunk: Buffer) => chunks.push(chunk));
    socket.on("error", reject);
    socket.on("close", () => resolve(parseAnswer(Buffer.concat(chunks).toString("utf8"))));
  });
}

function parseAnswer(text: string): RawAnswer {
  const statusLine = /^HTTP\/1\.[01] (\d{3})/.exec(text);
  const [head, payload] = statusLine ? splitOnce(text, "\r\n\r\n") : ["", text];
  const headers: Record<string, string> = {};
  for (const line of head.split("\r\n").slice(1)) {
    const colon = line.indexOf(":");
    if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  const decoded = /chunked/i.test(headers["transfer-encoding"] ?? "") ? dechunk(payload) : payload;
  let body: unknown = decoded;
  try {
    body = JSON.parse(decoded);
  } catch {
    // Not JSON: the raw text is the body.
  }
  return { status: Number(statusLine?.[1] ?? NaN), headers, body };
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
