/**
 * What a test with real processes starts and must clean up: a fresh log folder, and the Redis
 * servers, services and child processes it starts (it pushes them), all stopped and removed after
 * the file's tests, the processes first.
 */
import { afterAll } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { RedisServer } from "./redis-server";
import type { RunningService } from "./service";

export type Scratch = {
  logDir: string;
  redises: RedisServer[];
  services: RunningService[];
  processes: Array<ReturnType<typeof Bun.spawn>>;
};

export function scratch(prefix: string): Scratch {
  const made: Scratch = { logDir: mkdtempSync(join(tmpdir(), prefix)), redises: [], services: [], processes: [] };
  afterAll(async () => {
    for (const child of made.processes) child.kill("SIGKILL");
    for (const service of made.services) await service.stop().catch(() => {});
    for (const redis of made.redises) await redis.stop().catch(() => {});
    rmSync(made.logDir, { recursive: true, force: true });
  });
  return made;
}
