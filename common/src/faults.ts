/**
 * Test-only crash points. A process started with FAULT_POINT=<name> kills itself with SIGKILL the
 * first time it reaches `crashPoint(<name>)` — exactly like an outside kill at that line. A marker
 * file makes it fire once per point and instance, so the restarted process can finish the work.
 */
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";

let armed: { point: string; marker: string } | undefined;

export function armFaults(point: string | undefined, markerDir: string, instanceId: string): void {
  if (!point) return;
  const marker = join(markerDir, `.fault-fired-${point}-${instanceId}`);
  if (!existsSync(marker)) armed = { point, marker };
}

export function crashPoint(point: string): void {
  if (armed?.point !== point) return;
  writeFileSync(armed.marker, `${new Date().toISOString()}\n`);
  console.error(`[fault] crashing at ${point}`);
  process.kill(process.pid, "SIGKILL");
}
