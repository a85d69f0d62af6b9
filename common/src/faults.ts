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
    const marker = markerPath(markerDir, point, instanceId);
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

/**
 * Points armed one at a time, by SIGUSR2: for a process that reaches its points all the time (the
 * log writer, at every append), so that a test chooses the moment, e.g. once checkouts are under way.
 * Each SIGUSR2 arms the first point of the list that has not fired yet.
 */
export function armFaultsOnSignal(points: string | undefined, markerDir: string, instanceId: string): void {
  const listed = (points ?? "").split(",").filter(Boolean);
  if (listed.length === 0) return;
  process.on("SIGUSR2", () => {
    const point = listed.find((p) => !existsSync(markerPath(markerDir, p, instanceId)));
    if (point !== undefined) armed.set(point, markerPath(markerDir, point, instanceId));
  });
}

/** The file that records that `point` fired in `instanceId` (tests wait for it). */
export function markerPath(markerDir: string, point: string, instanceId: string): string {
  return join(markerDir, `.fault-fired-${point}-${instanceId}`);
}
