/**
 * The order service's own keys, beside the layout every service shares (common/src/keyspace.ts).
 * Liveness, not state: never logged, and a Redis rebuilt without them only hastens takeovers.
 */

/** Present while the order process `instanceId` is alive (it refreshes the key, which expires). */
export const driverAliveKey = (instanceId: string) => `driver:${instanceId}:alive`;

/** Whether the key is an order process's liveness key (driverAliveKey), which no log holds. */
export const isLivenessKey = (key: string): boolean => key.startsWith("driver:") && key.endsWith(":alive");
