/**
 * The log writer of one service: the only process that writes `logging/<service>_log.txt`. It runs
 * beside the service's Redis, with its lifecycle: start_redis_with_recovery.sh starts it once
 * recovery is done, starts it again if it dies, and stops it when Redis stops (in compose, in the
 * Redis container).
 *
 * Its loop, one group of lines at a time:
 *  1. read every line committed since the durable position from the stream `log:stream` (commit
 *     order: each commit added its lines in its own MULTI);
 *  2. append them to the log in one write, and fdatasync;
 *  3. publish the new durable position (`log:durable`, a key and a channel): the services answer the
 *     changes it covers (durability.ts);
 *  4. trim the stream up to it.
 * Killed before 2 or during it, the lines are still in the stream: the next writer starts from the
 * durable position and writes them (a line cut by the kill is skipped by replay, and the next write
 * starts on a new line). Killed after 2, before 3: they are written again, and replay takes a line
 * twice as once. Killed after 3, before 4: the next writer skips entries at or before the position.
 *
 * What Redis losing its data costs, in this order of events. Redis loses a suffix of its commands
 * (its AOF is fsync'ed every second) or all of them. A change and its line are one MULTI, so it keeps
 * both or neither. A change lost with its line was not yet durable, so it was never answered: its
 * caller got a 503 (DurablePosition) and a saga step is sent again. A line the writer wrote before
 * the loss is in the log, and recovery replays it, restoring its change. Since the stream is in
 * commit order and the writer writes a prefix of it, a change that read another's result, committed
 * after it, is never in the log without it: the log always holds a state Redis went through.
 * Recovery reads the log only once this writer is gone (the start script stops it when Redis dies;
 * in compose they share a container), so no line lands after recovery read the log.
 */
import { Redis } from "ioredis";
import { closeSync, fdatasyncSync, fstatSync, mkdirSync, openSync, readSync, writeSync } from "node:fs";
import { loadWriterConfig, type ServiceName } from "./config";
import { CompactionUpkeep } from "./compaction-upkeep";
import { atOrBefore, formatStreamId, nextStreamId, parseStreamId, STREAM_START, type StreamId } from "./durability";
import { armFaults, armFaultsOnSignal, crashPoint } from "./faults";
import { keys } from "./keyspace";
import { logPath } from "./log";

/** Stream entries (each a commit's lines) read at most per group. */
const MAX_ENTRIES_PER_GROUP = 4_096;

type StreamReply = Array<[stream: string, entries: Array<[id: string, fields: string[]]>]> | null;

export type LogWriterOptions = {
  service: ServiceName;
  logDir: string;
  /** The connection the loop reads the stream on (it blocks there). */
  redis: Redis;
  /** A second connection, for compaction's lock. */
  upkeepRedis: Redis;
  compactBytes: number;
  instanceId: string;
};

export class LogWriter {
  private fd: number;
  private size: number;
  private position: StreamId = STREAM_START;
  private stopping = false;
  private readonly upkeep: CompactionUpkeep;
  private loop: Promise<void> = Promise.resolve();

  private constructor(private readonly options: LogWriterOptions) {
    mkdirSync(options.logDir, { recursive: true });
    this.fd = this.openLog();
    this.size = fstatSync(this.fd).size;
    this.upkeep = new CompactionUpkeep(
      options.service,
      options.logDir,
      options.upkeepRedis,
      options.compactBytes,
      options.instanceId,
    );
  }

  /** Starts the loop from the durable position its Redis holds. */
  static async start(options: LogWriterOptions): Promise<LogWriter> {
    const writer = new LogWriter(options);
    const durable = await options.redis.get(keys.durableLog);
    if (durable !== null) writer.position = parseStreamId(durable);
    writer.loop = writer.run();
    // Its end is reported by finished(); an end no one asked about yet is not an unhandled error.
    writer.loop.catch(() => {});
    return writer;
  }

  /** Resolves when the loop ends: on stop(), or with the error that ended it (a lost connection). */
  finished(): Promise<void> {
    return this.loop;
  }

  private async run(): Promise<void> {
    const { redis } = this.options;
    while (!this.stopping) {
      // Checked before each read too, so that a writer started on an outgrown log compacts it.
      if (this.upkeep.due(this.size)) await this.upkeep.start(() => this.reopen());
      let reply: StreamReply;
      try {
        reply = (await redis.xread(
          "COUNT",
          MAX_ENTRIES_PER_GROUP,
          "BLOCK",
          0,
          "STREAMS",
          keys.logStream,
          formatStreamId(this.position),
        )) as StreamReply;
      } catch (err) {
        if (this.stopping) return;
        throw err;
      }
      const entries = reply?.[0]?.[1] ?? [];
      if (entries.length === 0) continue;
      let text = "";
      for (const [, fields] of entries) text += fields[1];
      const last = parseStreamId(entries.at(-1)![0]);
      crashPoint("writer.before_append");
      this.append(text);
      crashPoint("writer.appended_not_synced");
      fdatasyncSync(this.fd);
      crashPoint("writer.synced_not_published");
      this.position = last;
      const id = formatStreamId(last);
      await redis.pipeline().set(keys.durableLog, id).publish(keys.durableLog, id).exec();
      crashPoint("writer.published_not_trimmed");
      // Sent without waiting: the next XREAD follows it on the same connection.
      redis.xtrim(keys.logStream, "MINID", formatStreamId(nextStreamId(last))).catch(() => {});
    }
  }

  private append(text: string): void {
    const bytes = Buffer.from(text);
    for (let written = 0; written < bytes.length; ) written += writeSync(this.fd, bytes, written);
    this.size += bytes.length;
  }

  /**
   * Opens the log for appending. A writer killed in the middle of a write may have left a cut line
   * with no newline at the end: the first write of this one must not glue its first line to it.
   */
  private openLog(): number {
    const path = logPath(this.options.logDir, this.options.service);
    const fd = openSync(path, "a+");
    const size = fstatSync(fd).size;
    if (size > 0) {
      const lastByte = Buffer.alloc(1);
      readSync(fd, lastByte, 0, 1, size - 1);
      if (lastByte[0] !== 0x0a) {
        writeSync(fd, "\n");
        fdatasyncSync(fd);
      }
    }
    return fd;
  }

  /** After a compaction renamed the log: the next group goes to a new file. */
  private reopen(): void {
    closeSync(this.fd);
    this.fd = this.openLog();
    this.size = 0;
  }

  /** Whether the entry `id` is at or before the durable position (for tests). */
  isDurable(id: string): boolean {
    return atOrBefore(parseStreamId(id), this.position);
  }

  /** Ends the loop (its blocking read is cut off) and closes the file. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.options.redis.disconnect();
    await this.loop.catch(() => {});
    await this.upkeep.idle();
    this.options.upkeepRedis.disconnect();
    closeSync(this.fd);
  }
}

/** A connection of the writer: no reconnection, as a writer that lost its Redis ends (see main). */
function writerConnection(socket: string | undefined, host: string, port: number): Redis {
  const redis = socket
    ? new Redis({ path: socket, retryStrategy: () => null, maxRetriesPerRequest: 0 })
    : new Redis({ host, port, retryStrategy: () => null, maxRetriesPerRequest: 0 });
  redis.on("error", () => {});
  return redis;
}

if (import.meta.main) {
  const config = loadWriterConfig(process.argv[2]);
  const instanceId = `writer-${config.service}`;
  armFaults(config.faultPoint, config.faultDir, instanceId);
  armFaultsOnSignal(config.faultPointOnSignal, config.faultDir, instanceId);
  const redis = writerConnection(config.redisSocket, config.redisHost, config.redisPort);
  const upkeepRedis = writerConnection(config.redisSocket, config.redisHost, config.redisPort);
  // A writer whose connection dropped exits, and its start script starts another: Redis may have died
  // and come back with less, and the new writer starts from what that Redis holds.
  for (const conn of [redis, upkeepRedis]) conn.on("close", () => process.exit(1));
  const writer = await LogWriter.start({
    service: config.service,
    logDir: config.logDir,
    redis,
    upkeepRedis,
    compactBytes: config.compactBytes,
    instanceId,
  });
  console.log(`[${instanceId}] appending the stream to ${logPath(config.logDir, config.service)}`);
  const stop = () => void writer.stop().then(() => process.exit(0));
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
  await writer.finished().catch((err: unknown) => {
    console.error(`[${instanceId}] ${(err as Error).message}`);
    process.exit(1);
  });
}
