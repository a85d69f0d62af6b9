/**
 * The order service's state changes on Redis: each one a transaction that applies a pure rule
 * (order-rules.ts) or a saga transition (saga-record.ts), and the reads the saga engine needs (the
 * unfinished sagas, the drivers' liveness).
 */
import { AppError, found } from "@checkout/common/errors";
import { keys, parseStored } from "@checkout/common/keyspace";
import { keepSubscribed, throwOnReplyError } from "@checkout/common/redis";
import type { Redis } from "ioredis";
import type { Hash } from "@checkout/common/log";
import type { Store } from "@checkout/common/store";
import { driverAliveKey } from "./keys";
import {
  type CheckoutStart,
  NO_DRIVERS,
  newOrder,
  type Order,
  orderCodec,
  ownsSaga,
  startCheckout,
  withItem,
} from "./order-rules";
import { isOrphaned, needsLiveness, type SagaChange, type SagaRecord } from "./saga-record";

const orderOrNotFound = (id: string, hash: Hash | null): Order => orderCodec.decode(found("order", id, hash));

export function createOrders(store: Store, instanceId: string, leaseMs: number) {
  const change = (op: string, id: string, rule: (order: Order | null) => Order | AppError) =>
    store.change(op, keys.order(id), orderCodec, rule);
  /**
   * Of these drivers, those that are gone (nobody and this process never are): with no connection
   * subscribed to their liveness channel, or their liveness key expired. A process that dies closes
   * its connections at once, so Redis knows within a moment; the key covers a machine that vanished
   * with its connections open. One round trip: an MGET and a PUBSUB NUMSUB.
   */
  const goneDrivers = async (drivers: Iterable<string>): Promise<ReadonlySet<string>> => {
    const others = [...new Set(drivers)].filter((driver) => driver !== "" && driver !== instanceId);
    if (others.length === 0) return NO_DRIVERS;
    const channels = others.map(driverAliveKey);
    const [alive, subscribers] = throwOnReplyError(
      await store.client
        .pipeline()
        .mget(...channels)
        .pubsub("NUMSUB", ...channels)
        .exec(),
    ) as [Array<string | null>, Array<string | number>];
    // NUMSUB answers channel, count, channel, count... in the order asked.
    return new Set(others.filter((_, i) => alive[i] === null || Number(subscribers[2 * i + 1]) === 0));
  };
  /** This process's presence: a connection subscribed to its own liveness channel while it lives. */
  let presence: Redis | undefined;
  /** Whether this process may take the saga over, given the drivers known to be gone (see isOrphaned). */
  const orphaned = (saga: SagaRecord, now: number, gone: ReadonlySet<string>) =>
    isOrphaned(saga, instanceId, now, gone.has(saga.owner));
  /** The orders of the given ids that exist, read in one round trip. */
  const findMany = async (ids: readonly string[]): Promise<Array<[string, Order]>> => {
    if (ids.length === 0) return [];
    const values = await store.client.mget(...ids.map((id) => keys.order(id)));
    return ids.flatMap((id, i) => {
      const hash = parseStored(values[i]);
      return hash ? [[id, orderCodec.decode(hash)] as [string, Order]] : [];
    });
  };

  /** One claim transaction (see startCheckout). */
  const claim = (id: string, nonce: string, gone?: ReadonlySet<string>, resume?: string) => {
    const key = keys.order(id);
    return store.transact("order.checkout", [key], (snapshot) => {
      const hash = snapshot.get(key);
      const { result, order } = startCheckout(
        hash ? orderCodec.decode(hash) : null,
        id,
        instanceId,
        Date.now(),
        leaseMs,
        nonce,
        gone,
        resume,
      );
      return order ? { result, writes: { [key]: orderCodec.encode(order) } } : { result };
    });
  };

  return {
    async create(userId: string): Promise<string> {
      const id = crypto.randomUUID();
      await change("order.create", id, () => newOrder(userId));
      return id;
    },

    find: async (id: string): Promise<Order> => orderOrNotFound(id, await store.read(keys.order(id))),

    /** The order, read for a checkout answer that repeats another request's outcome: durable in the log first. */
    findLogged: async (id: string): Promise<Order> => orderOrNotFound(id, await store.readDurable(keys.order(id))),

    addItem: (orderId: string, itemId: string, quantity: number, price: number) =>
      change("order.add_item", orderId, (order) => withItem(order, orderId, itemId, quantity, price)),

    async batchInit(
      count: number,
      itemCount: number,
      userCount: number,
      itemPrice: number,
      random = Math.random,
    ): Promise<void> {
      const pick = (n: number) => String(Math.floor(random() * n));
      const entries = Array.from({ length: count }, (_, i) => {
        const order = newOrder(
          pick(userCount),
          [
            [pick(itemCount), 1],
            [pick(itemCount), 1],
          ],
          2 * itemPrice,
        );
        return [keys.order(String(i)), orderCodec.encode(order)] as const;
      });
      await store.writeMany("order.batch_init", entries);
    },

    /**
     * Claims the order's checkout: starts a new saga attempt, takes over an orphaned one, or says whom
     * to wait for; with `resume`, only takes over that attempt (see startCheckout).
     */
    async startCheckout(id: string, resume?: string): Promise<CheckoutStart> {
      const nonce = crypto.randomUUID().slice(0, 8);
      let start = await claim(id, nonce, undefined, resume);
      if (!(start instanceof AppError) && start.kind === "wait") {
        // The driver's liveness is read outside the claim: should it come back in between, both drive
        // the saga for a moment, which its operation id makes safe (and the claim's WATCH still
        // refuses a saga that changed hands meanwhile).
        const gone = await goneDrivers([start.driver]);
        if (gone.size > 0) start = await claim(id, nonce, gone, resume);
      }
      if (start instanceof AppError) throw start;
      // A 200 for a payment another request recorded: its line must be in the log before the answer.
      if (start.kind === "paid") await store.untilCommittedDurable();
      return start;
    },

    /** Records a saga transition; returns the order after it, or null if this process no longer drives that attempt. */
    async recordSaga(op: string, id: string, opId: string, sagaChange: SagaChange): Promise<Order | null> {
      const key = keys.order(id);
      return store.transact(op, [key], (snapshot) => {
        const hash = snapshot.get(key);
        const order = hash ? orderCodec.decode(hash) : null;
        if (!ownsSaga(order, opId, instanceId)) return { result: null };
        const changed = sagaChange(order.saga, order);
        if (!changed) return { result: null };
        const next = { ...order, ...changed };
        return { result: next, writes: { [key]: orderCodec.encode(next) } };
      });
    },

    /** Whether this process may take the saga over, provided it does not drive it already (see isOrphaned). */
    async isOrphaned(saga: SagaRecord): Promise<boolean> {
      const gone = await goneDrivers(needsLiveness(saga, instanceId, Date.now()) ? [saga.owner] : []);
      return orphaned(saga, Date.now(), gone);
    },

    /**
     * The unfinished sagas this process may take over, but for those `skip` names (it drives them):
     * their orders read with one MGET, their drivers' liveness keys with one more.
     */
    async orphanedSagas(skip: (orderId: string) => boolean): Promise<Array<[string, SagaRecord]>> {
      const ids = (await store.client.smembers(keys.activeSagas)).filter((id) => !skip(id));
      const sagas = (await findMany(ids)).map(([id, order]) => [id, order.saga] as [string, SagaRecord]);
      const now = Date.now();
      const gone = await goneDrivers(sagas.flatMap(([, s]) => (needsLiveness(s, instanceId, now) ? [s.owner] : [])));
      return sagas.filter(([, saga]) => orphaned(saga, now, gone));
    },

    /** Refreshes this process's liveness key (driverAliveKey) for `ttlMs`: its sagas are its own while it lives. */
    async stillAlive(ttlMs: number): Promise<void> {
      await store.client.set(driverAliveKey(instanceId), "1", "PX", ttlMs);
    },

    /**
     * Opens this process's presence (see goneDrivers); ioredis subscribes again after a reconnection.
     * Resolves once subscribed, or Redis did not answer (its sagas look gone meanwhile: others may drive them).
     */
    async announcePresence(): Promise<void> {
      if (presence) return;
      presence = store.client.duplicate({ enableAutoPipelining: false, enableOfflineQueue: true });
      await keepSubscribed(presence, driverAliveKey(instanceId));
    },

    withdrawPresence(): void {
      presence?.disconnect();
      presence = undefined;
    },

    async unfinishedSagas(): Promise<string[]> {
      return store.client.smembers(keys.activeSagas);
    },

    /** How many sagas are unfinished (running or compensating), without listing them. */
    unfinishedCount: (): Promise<number> => store.client.scard(keys.activeSagas),

    findMany,
  };
}

export type OrderStore = ReturnType<typeof createOrders>;
