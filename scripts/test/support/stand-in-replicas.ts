/** Stand-ins for a service's replicas behind a real nginx (gateway-render.test.ts). */
import { LOOPBACK } from "../../../deploy/topology";

export type Echo = { server: ReturnType<typeof Bun.serve>; hits: () => number };

/** A replica that answers every request with what it received. */
export function echoServer(name: string, port: number): Echo {
  let hits = 0;
  const server = Bun.serve({
    hostname: LOOPBACK,
    port,
    fetch(request) {
      hits += 1;
      const url = new URL(request.url);
      return Response.json({ server: name, method: request.method, path: url.pathname + url.search });
    },
  });
  return { server, hits: () => hits };
}

/** A replica that dies under every request: it reads it, then closes the connection without answering. */
export function hangUpServer(port: number): {
  listener: { stop(closeActiveConnections?: boolean): void };
  hits: () => number;
} {
  let hits = 0;
  const answered = new WeakSet<object>();
  const listener = Bun.listen({
    hostname: LOOPBACK,
    port,
    socket: {
      data(socket) {
        if (answered.has(socket)) return;
        answered.add(socket);
        hits += 1;
        socket.end();
      },
    },
  });
  return { listener, hits: () => hits };
}
