/**
 * The layout of the three Redis databases, in one place. Every entity is a hash whose field `v`
 * holds the sequence number of the change that last wrote it (see log.ts).
 */
import type { ServiceName } from "./config";
import type { Hash } from "./log";

export const keys = {
  /** Allocation counter of sequence numbers (every service). */
  seq: "meta:seq",
  /** Log lines committed to Redis whose append to the log file is not yet confirmed, by sequence number. */
  pendingLog: "log:pending",
  /** Held by the one process compacting the service log (compact.ts). */
  compactionLock: "log:compaction_lock",
  item: (id: string) => `item:${id}`,
  user: (id: string) => `user:${id}`,
  order: (id: string) => `order:${id}`,
  /** The record of one saga step at a participant (stock or payment), by operation id. */
  operation: (opId: string) => `op:${opId}`,
  /** Ids of orders whose saga is running or compensating (order service). */
  activeSagas: "sagas:active",
} as const;

/**
 * A set derived from hashes: a hash under `keyPrefix` belongs to `set` (by the id after the prefix)
 * exactly when `contains` says so. The store keeps it in step with every write, and recovery rebuilds
 * it from replayed hashes, so the log never needs to carry it.
 */
export type DerivedIndex = { set: string; keyPrefix: string; contains: (hash: Hash) => boolean };

/** Saga statuses that mean "not finished": the saga must be driven on by someone. */
export const UNFINISHED_SAGA_STATUSES: ReadonlySet<string> = new Set(["running", "compensating"]);

export const DERIVED_INDEXES: Record<ServiceName, readonly DerivedIndex[]> = {
  order: [
    { set: keys.activeSagas, keyPrefix: "order:", contains: (h) => UNFINISHED_SAGA_STATUSES.has(h.saga_status ?? "") },
  ],
  stock: [],
  payment: [],
};

/** The index changes implied by writing `hash` at `key`: [set, member, belongs]. */
export function indexChanges(service: ServiceName, key: string, hash: Hash): Array<[string, string, boolean]> {
  const changes: Array<[string, string, boolean]> = [];
  for (const index of DERIVED_INDEXES[service]) {
    if (key.startsWith(index.keyPrefix)) changes.push([index.set, key.slice(index.keyPrefix.length), index.contains(hash)]);
  }
  return changes;
}
