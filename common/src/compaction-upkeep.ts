/**
 * Upkeep of the log, run by the service's log writer (log-writer.ts), its only writer: once the log
 * outgrows its bound, the writer renames it out of the way between two appends and goes on in a new
 * file, and a child process folds the renamed log into the snapshot (compact.ts). The writer takes the
 * rename itself, between two of its own writes, so no line can land in a file already folded.
 *
 * A Redis lock keeps one compaction at a time: a writer killed while its child runs is restarted,
 * and the child, still running, must not meet a second one that would delete the renamed log it folds.
 */
import type { Redis } from "ioredis";
import { existsSync, renameSync } from "node:fs";
import { setPriority } from "node:os";
import { join } from "node:path";
import type { ServiceName } from "./config";
import { TIMING } from "./timing";
import { keys } from "./keyspace";
import { compactingPath, logPath } from "./log";
import { throwOnReplyError } from "./redis";

/** Scheduling priority of the compaction child: 0 is the services', 19 the lowest. */
const COMPACTION_NICENESS = 10;

export class CompactionUpkeep {
  private running: Promise<void> | undefined;

  constructor(
    private readonly service: ServiceName,
    private readonly logDir: string,
    /** A connection of the upkeep's own: the writer's blocks on XREAD. */
    private readonly redis: Redis,
    private readonly compactBytes: number,
    private readonly instanceId: string,
  ) {}

  /** Whether a log of `size` bytes is due, and no compaction of this writer runs. */
  due(size: number): boolean {
    return size >= this.compactBytes && this.running === undefined;
  }

  /**
   * Takes the lock and, if it gets it, renames the log (unless an interrupted compaction's renamed
   * log is still there: that one is folded first) and starts the child. `reopen` is called right
   * after the rename, before any other write: the writer goes on in a new file.
   */
  async start(reopen: () => void): Promise<void> {
    // A token of this compaction's own: should the lock expire under it and another writer take it,
    // the release below leaves the other's lock alone.
    const token = `${this.instanceId}:${crypto.randomUUID()}`;
    const locked = await this.redis.set(keys.compactionLock, token, "PX", TIMING.compactionLockMs, "NX");
    if (locked !== "OK") return;
    if (!existsSync(compactingPath(this.logDir, this.service))) {
      renameSync(logPath(this.logDir, this.service), compactingPath(this.logDir, this.service));
      reopen();
    }
    this.running = this.fold(token).finally(() => (this.running = undefined));
  }

  private async fold(token: string): Promise<void> {
    try {
      const child = Bun.spawn(["bun", join(import.meta.dir, "compact.ts"), this.service, this.logDir], {
        stdout: "inherit",
        stderr: "inherit",
      });
      // Upkeep gives way to requests: at the services' priority, folding the order log of 150 000
      // orders took a core for seconds and cut checkout throughput by up to half meanwhile. A lower
      // priority makes it take longer on a busy machine instead (the lock outlasts it).
      try {
        setPriority(child.pid, COMPACTION_NICENESS);
      } catch {
        // Already exited, or not allowed: it runs at the services' priority, as before.
      }
      await child.exited;
    } finally {
      await this.releaseLock(token).catch(() => {});
    }
  }

  /** Deletes the compaction lock if it still holds `token`, in an optimistic transaction. */
  private async releaseLock(token: string): Promise<void> {
    const [, holder] = throwOnReplyError(
      await this.redis.pipeline().watch(keys.compactionLock).get(keys.compactionLock).exec(),
    );
    if (holder === token) await this.redis.multi().del(keys.compactionLock).exec();
    else await this.redis.unwatch();
  }

  /** Resolves once a compaction this writer started has ended. */
  async idle(): Promise<void> {
    await this.running;
  }
}
