/**
 * The layout of the three Redis databases, in one place. Every entity (item, user, order, saga-step
 * record) is one Redis string: the JSON of its fields, all strings, and `v`, the sequence number of
 * the change that last wrote it (see log.ts). Strings rather than hashes, because a batch of
 * transactions then reads all its keys with one MGET and writes them with one MSET: through ioredis
 * each command costs the client CPU whatever its size, so two commands per batch cost less than two
 * per key (docs/benchmarks.md#redis-commands-and-chunk-sizes).
 */
import type { ServiceName } from "./config";
import { VERSION_FIELD, type Hash } from "./log";

/**
 * The stored form of an entity written by the change numbered `seq`, from `json`, the JSON object of
 * its fields (as in its log line): the same text with `v` added as the last field.
 */
export function storedValue(json: string, seq: number): string {
  return `${json.length > 2 ? `${json.slice(0, -1)},` : "{"}"${VERSION_FIELD}":"${seq}"}`;
}

/** An entity as stored (null: no such key), with its `v`. */
export function parseStored(value: string | null | undefined): Hash | null {
  return value == null ? null : (JSON.parse(value) as Hash);
}

export const keys = {
  /** Allocation counter of sequence numbers (every service). */
  seq: "meta:seq",
  /**
   * A Redis Stream of log lines on their way to the log file: each commit adds its lines in its own
   * MULTI, so the stream holds them in commit order. The service's log writer appends them to the
   * file and trims what it wrote (log-writer.ts).
   */
  logStream: "log:stream",
  /**
   * The id of the last stream entry the log file holds durably: a key (where the writer starts again)
   * and a channel of the same name (how service processes learn it, see durability.ts).
   */
  durableLog: "log:durable",
  /** Held by the log writer while its child process compacts the service log (compact.ts). */
  compactionLock: "log:compaction_lock",
  item: (id: string) => `item:${id}`,
  user: (id: string) => `user:${id}`,
  order: (id: string) => `order:${id}`,
  /** The record of one saga step at a participant (stock or payment), by operation id. */
  operation: (opId: string) => `op:${opId}`,
  /** How often each process of the service (by INSTANCE_ID) has started: observability only, never logged. */
  processStarts: "process:starts",
  /** Running totals of the conservation meter (totals.ts): observability only, never logged. */
  totals: "meta:totals",
  /** Ids of orders whose saga is unfinished (order service; DERIVED_INDEXES). */
  activeSagas: "sagas:active",
} as const;

/**
 * A set derived from hashes: a hash under `keyPrefix` belongs to `set` (by the id after the prefix)
 * exactly when `contains` says so. The store keeps it in step with every write, and recovery rebuilds
 * it from replayed hashes, so the log never needs to carry it.
 */
export type DerivedIndex = { set: string; keyPrefix: string; contains: (hash: Hash) => boolean };

/**
 * The derived sets of each service. They are declared here, and not in the service's folder, because
 * recovery rebuilds them in the Redis container, which holds common/ only. The order service's set of
 * unfinished sagas holds the orders whose `saga_status` is one of the statuses that
 * order/src/saga-record.ts calls unfinished (UNFINISHED_SAGA_STATUSES; order/test/saga-record.test.ts holds
 * the two together).
 */
export const DERIVED_INDEXES: Record<ServiceName, readonly DerivedIndex[]> = {
  order: [
    {
      set: keys.activeSagas,
      keyPrefix: "order:",
      contains: (h) => h.saga_status === "running" || h.saga_status === "compensating",
    },
  ],
  stock: [],
  payment: [],
};

/** Members to add to and remove from one derived set. */
export type IndexUpdate = { set: string; add: string[]; remove: string[] };

/**
 * The index changes implied by writing each `hash` at its `key`, grouped into one SADD and one SREM
 * per set. A key written twice counts with its last state.
 */
export function indexUpdates(service: ServiceName, written: Iterable<readonly [string, Hash]>): IndexUpdate[] {
  if (DERIVED_INDEXES[service].length === 0) return [];
  const last = new Map(written);
  const updates = new Map<string, IndexUpdate>();
  for (const [key, hash] of last) {
    for (const [set, member, belongs] of indexChanges(service, key, hash)) {
      let update = updates.get(set);
      if (!update) {
        update = { set, add: [], remove: [] };
        updates.set(set, update);
      }
      (belongs ? update.add : update.remove).push(member);
    }
  }
  return [...updates.values()];
}

/** SADD and SREM of the derived indexes' changes, one command each per set. */
export function addIndexUpdates(
  tx: { sadd(set: string, ...members: string[]): unknown; srem(set: string, ...members: string[]): unknown },
  updates: readonly IndexUpdate[],
): void {
  for (const { set, add, remove } of updates) {
    if (add.length > 0) tx.sadd(set, ...add);
    if (remove.length > 0) tx.srem(set, ...remove);
  }
}

/** The index changes implied by writing `hash` at `key`: [set, member, belongs]. */
export function indexChanges(service: ServiceName, key: string, hash: Hash): Array<[string, string, boolean]> {
  const changes: Array<[string, string, boolean]> = [];
  for (const index of DERIVED_INDEXES[service]) {
    if (key.startsWith(index.keyPrefix))
      changes.push([index.set, key.slice(index.keyPrefix.length), index.contains(hash)]);
  }
  return changes;
}
