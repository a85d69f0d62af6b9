/**
 * Orders: pure rules over an order (adding an item, claiming its checkout), and the state changes on
 * Redis that apply them and the saga's transitions. The saga's record and its transitions are in
 * saga-record.ts; the saga itself (which step, what to call) in saga.ts, run by saga-engine.ts.
 */
import { AppError, badInput, notFound, refused } from "@checkout/common/errors";
import { MAX_INTEGER } from "@checkout/common/limits";
import { MAX_ITEMS_PER_STEP } from "@checkout/common/internal";
import { keys, parseStored } from "@checkout/common/keyspace";
import type { Hash } from "@checkout/common/log";
import { operationId } from "@checkout/common/retention";
import type { Codec, Decision, Store } from "@checkout/common/store";
import { driverAliveKey } from "./keys";
import {
  isOrphaned,
  isUnfinished,
  needsLiveness,
  NO_SAGA,
  type SagaChange,
  type SagaRecord,
  type SagaStatus,
} from "./saga-record";

export type Order = {
  userId: string;
  items: Array<[string, number]>;
  totalCost: number;
  paid: boolean;
  saga: SagaRecord;
};

const NO_DRIVERS: ReadonlySet<string> = new Set();

/**
 * Stored as six fields: the order's own four, the saga's status on its own (the unfinished-sagas index
 * reads it), and the rest of the saga record as one JSON field, empty while there has been no
 * checkout. Fewer fields is less to encode and send on every saga transition.
 */
export const orderCodec: Codec<Order> = {
  encode: (o) => {
    const { status, ...rest } = o.saga;
    return {
      user_id: o.userId,
      items: JSON.stringify(o.items),
      total_cost: String(o.totalCost),
      paid: o.paid ? "true" : "false",
      saga_status: status,
      saga: status === "none" ? "" : JSON.stringify(rest),
    };
  },
  decode: (h) => ({
    userId: h.user_id ?? "",
    items: JSON.parse(h.items ?? "[]") as Array<[string, number]>,
    totalCost: Number(h.total_cost),
    paid: h.paid === "true",
    saga: h.saga
      ? { status: (h.saga_status ?? "none") as SagaStatus, ...(JSON.parse(h.saga) as Omit<SagaRecord, "status">) }
      : NO_SAGA,
  }),
};

export const newOrder = (userId: string, items: Array<[string, number]> = [], totalCost = 0): Order => ({
  userId,
  items,
  totalCost,
  paid: false,
  saga: NO_SAGA,
});

const unknownOrder = (id: string) => notFound("unknown_order", `order ${id} does not exist`);

// ---- pure rules ----

export function withItem(
  order: Order | null,
  orderId: string,
  itemId: string,
  quantity: number,
  price: number,
): Order | AppError {
  if (!order) return unknownOrder(orderId);
  if (order.paid) return refused("order_already_paid", `order ${orderId} is paid; items can no longer be added`);
  if (isUnfinished(order.saga)) return refused("checkout_in_progress", `order ${orderId} is being checked out`);
  if (order.items.length >= MAX_ITEMS_PER_STEP)
    return refused("order_too_large", `order ${orderId} already holds ${MAX_ITEMS_PER_STEP} lines`);
  const totalCost = order.totalCost + quantity * price;
  if (!Number.isSafeInteger(totalCost) || totalCost > MAX_INTEGER)
    return badInput(`total cost of order ${orderId} would exceed ${MAX_INTEGER}`);
  return { ...order, items: [...order.items, [itemId, quantity]], totalCost };
}

/** What a checkout request finds when it arrives, and the claim it makes. */
export type CheckoutStart =
  | { kind: "paid" }
  /** `takeover`: the saga was another driver's, whose lease ran out. */
  | { kind: "drive"; order: Order; takeover: boolean }
  /**
   * Another process (`driver`) drives the attempt `opId`. `decided`: it has already decided and answered the
   * attempt's failure (it is compensating), so this request is for a new attempt, once that one ends.
   */
  | { kind: "wait"; opId: string; decided: boolean; driver: string }
  /** The attempt a sweep came to resume has ended (failed) since it looked: nothing to do. */
  | { kind: "ended" };

/**
 * `goneDrivers`: processes whose liveness key was found expired (their sagas are taken over at once).
 * `resume`: the attempt an upkeep sweep saw orphaned and comes to take over. Only that attempt is
 * taken over: if it ended meanwhile, no new one is started (no client asked for one, and one that
 * succeeded would charge an order whose checkout was answered 409).
 */
export function startCheckout(
  order: Order | null,
  orderId: string,
  me: string,
  now: number,
  leaseMs: number,
  nonce: string,
  goneDrivers: ReadonlySet<string> = NO_DRIVERS,
  resume?: string,
): Decision<CheckoutStart | AppError> & { order?: Order } {
  if (!order) return { result: unknownOrder(orderId) };
  if (order.paid) return { result: { kind: "paid" } };
  const saga = order.saga;
  if (resume !== undefined && !(isUnfinished(saga) && saga.opId === resume)) return { result: { kind: "ended" } };
  if (isUnfinished(saga)) {
    if (saga.leaseUntil > now && saga.owner !== me && !goneDrivers.has(saga.owner)) {
      return { result: { kind: "wait", opId: saga.opId, decided: saga.status === "compensating", driver: saga.owner } };
    }
    // Its driver is gone (lease expired, or no longer alive): take the saga over where it stands.
    const claimed = { ...order, saga: { ...saga, owner: me, leaseUntil: now + leaseMs } };
    return { result: { kind: "drive", order: claimed, takeover: saga.owner !== me }, order: claimed };
  }
  const attempt = saga.attempt + 1;
  const started: Order = {
    ...order,
    saga: {
      status: "running",
      attempt,
      opId: operationId(orderId, attempt, nonce, now),
      step: 0,
      error: null,
      owner: me,
      leaseUntil: now + leaseMs,
    },
  };
  return { result: { kind: "drive", order: started, takeover: false }, order: started };
}

/** A saga transition is only valid for its driver's attempt, while the driver still holds it. */
export function ownsSaga(order: Order | null, opId: string, me: string): order is Order {
  return order !== null && order.saga.opId === opId && order.saga.owner === me && isUnfinished(order.saga);
}

// ---- state changes ----

function orderOrNotFound(id: string, hash: Hash | null): Order {
  if (!hash) throw unknownOrder(id);
  return orderCodec.decode(hash);
}

export function createOrders(store: Store, instanceId: string, leaseMs: number) {
  const change = (op: string, id: string, rule: (order: Order | null) => Order | AppError) =>
    store.change(op, keys.order(id), orderCodec, rule);
  /** Of these drivers, those whose liveness key has expired, read with one MGET (nobody and this process never are). */
  const goneDrivers = async (drivers: Iterable<string>): Promise<ReadonlySet<string>> => {
    const others = [...new Set(drivers)].filter((driver) => driver !== "" && driver !== instanceId);
    if (others.length === 0) return NO_DRIVERS;
    const alive = await store.client.mget(...others.map(driverAliveKey));
    return new Set(others.filter((_, i) => alive[i] === null));
  };
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
  const claim = (id: string, nonce: string, goneDrivers?: ReadonlySet<string>, resume?: string) => {
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
        goneDrivers,
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

    async unfinishedSagas(): Promise<string[]> {
      return store.client.smembers(keys.activeSagas);
    },

    /** How many sagas are unfinished (running or compensating), without listing them. */
    unfinishedCount: (): Promise<number> => store.client.scard(keys.activeSagas),

    findMany,
  };
}

export type OrderStore = ReturnType<typeof createOrders>;
