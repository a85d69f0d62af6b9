/** Finding ports nobody listens on, so that a test's private stack can run beside a developer's. */
import { createServer } from "node:net";
import { allPorts, topology, LOOPBACK, type Replicas } from "../../deploy/topology";

/**
 * Private stacks are shifted by a multiple of this, so that two of them (and the default stack) never
 * share a port: every port of one topology lies within 8000..8899 (metrics ports included) or 6381..6383 before the shift.
 */
export const PORT_OFFSET_STEP = 1_000;
/**
 * Offsets tried: the shifted ports stay below Linux's ephemeral range (32768 and up), where the
 * kernel picks the local ports of outgoing connections and could take one of ours at any moment.
 */
const MIN_PORT_OFFSET = 1_000;
const MAX_PORT_OFFSET = 24_000;

export function isPortFree(port: number, host = LOOPBACK): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once("error", () => resolve(false));
    server.listen({ port, host, exclusive: true }, () => server.close(() => resolve(true)));
  });
}

/** The ports among `ports` that something already listens on. */
export async function busyPorts<T extends { port: number }>(ports: readonly T[]): Promise<T[]> {
  const free = await Promise.all(ports.map((p) => isPortFree(p.port)));
  return ports.filter((_, i) => !free[i]);
}

/** A port offset at which every port of a stack with these replicas is free right now. */
export async function findFreePortOffset(replicas: number | Partial<Replicas> = 1): Promise<number> {
  const candidates: number[] = [];
  for (let k = MIN_PORT_OFFSET; k <= MAX_PORT_OFFSET; k += PORT_OFFSET_STEP) candidates.push(k);
  // Random order: test files running at the same time rarely race for the same offset.
  candidates.sort(() => Math.random() - 0.5);
  for (const offset of candidates) {
    if ((await busyPorts(allPorts(topology(replicas, offset)))).length === 0) return offset;
  }
  throw new Error(`no port offset in [${MIN_PORT_OFFSET}, ${MAX_PORT_OFFSET}] has all its ports free`);
}
