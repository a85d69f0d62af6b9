/**
 * Test-only crash points. A process started with FAULT_POINT=<name>[,<name>…] kills itself with
 * SIGKILL the first time it reaches `crashPoint(<name>)` — exactly like an outside kill at that line.
 * A marker file makes each point fire once per instance, so the restarted process can finish the
 * work (and reach the next point of the list).
 */
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";

/** Armed points, each with the marker file that records it has fired. */
const armed = new Map<string, string>();

export function armFaults(points: string | undefined, markerDir: string, instanceId: string): void {
  for (const point of (points ?? "").split(",").filter(Boolean)) {
    const marker = join(markerDir, `.fault-fired-${point}-${instanceId}`);
    if (!existsSync(marker)) armed.set(point, marker);
  }
}

export function faultsArmed(): boolean {
  return armed.size > 0;
}

export function crashPoint(point: string): void {
  const marker = armed.get(point);
  if (marker === undefined) return;
  writeFileSync(marker, `${new Date().toISOString()}\n`);
  console.error(`[fault] crashing at ${point}`);
  process.kill(process.pid, "SIGKILL");
}
