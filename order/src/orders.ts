/**
 * Orders and the durable record of their checkout saga: pure rules over an order, and the state
 * changes on Redis that apply them. The saga itself (which step, what to call) is in saga.ts.
 */
import { AppError, badInput, notFound, refused, type ErrorCode, type ErrorStatus } from "@checkout/common/errors";
import { MAX_INTEGER } from "@checkout/common/http";
import { MAX_ITEMS_PER_STEP } from "@checkout/common/internal";
import { keys, parseStored, UNFINISHED_SAGA_STATUSES } from "@checkout/common/keyspace";
import { throwOnReplyError } from "@checkout/common/redis";
import type { Redis } from "ioredis";
import type { Hash } from "@checkout/common/log";
import { operationId } from "@checkout/common/retention";
import type { Codec, Decision, Store } from "@checkout/common/store";

export type SagaStatus = "none" | "running" | "compensating" | "failed" | "done";

/**
 * The checkout saga of an order, as recorded before its first step and at its decision. `step`: while
 * compensating, the index of the last step whose effect may need undoing (-1: none); 0 while running
 * (a driver runs the forward steps from the first, see saga.ts).
 */
export type SagaRecord = {
  status: SagaStatus;
  attempt: number;
  /**
   * The operation id of this attempt, `<order>:<attempt>.<nonce>@<start>`, sent with every step. The
   * nonce keeps it unique even when batch_init resets an order and its attempts count from 1 again; the
   * start (ms since the epoch) tells participants how old the attempt is (common/src/retention.ts).
   */
  opId: string;
  step: number;
  /** Why the attempt failed, as answered to every checkout request that waited for it. */
  error: { status: ErrorStatus; code: ErrorCode; message: string } | null;
  /** The process driving the saga, until `leaseUntil` (ms since the epoch) unless it renews. */
  owner: string;
  leaseUntil: number;
  /** When this attempt was claimed (ms since the epoch), for the sagas-in-flight listing. */
  startedAt: number;
};

export type Order = {
  userId: string;
  items: Array<[string, number]>;
  totalCost: number;
  paid: boolean;
  saga: SagaRecord;
};

const NO_DRIVERS: ReadonlySet<string> = new Set();

const NO_SAGA: SagaRecord = {
  status: "none",
  attempt: 0,
  opId: "",
  step: -1,
  error: null,
  owner: "",
  leaseUntil: 0,
  startedAt: 0,
};

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

export const isUnfinished = (saga: SagaRecord) => UNFINISHED_SAGA_STATUSES.has(saga.status);

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
      startedAt: now,
    },
  };
  return { result: { kind: "drive", order: started, takeover: false }, order: started };
}

/**
 * A saga nobody drives any more, which any order process may take over: its driver's lease has run
 * out, its driver is gone (`driverGone`: its liveness key has expired, see TIMING.driverAliveTtlMs), or
 * its driver was `me` before a restart. A replica keeps its INSTANCE_ID when it restarts, and a process
 * drives only the sagas it holds in memory, so an unfinished saga recorded as its own that it does not
 * hold was left by its previous run.
 */
export function isOrphaned(saga: SagaRecord, me: string, now: number, driverGone: boolean): boolean {
  return isUnfinished(saga) && (saga.leaseUntil <= now || saga.owner === me || driverGone);
}

/** A saga transition is only valid for its driver's attempt, while the driver still holds it. */
export function ownsSaga(order: Order | null, opId: string, me: string): order is Order {
  return order !== null && order.saga.opId === opId && order.saga.owner === me && isUnfinished(order.saga);
}

/** A saga transition: the order's next state, or null where the saga is not in a state that allows it. */
export type SagaChange = (saga: SagaRecord, order: Order) => (Partial<Order> & { saga: SagaRecord }) | null;

const whileRunning = (saga: SagaRecord) => saga.status === "running";

export const sagaChanges = {
  renewLease:
    (now: number, leaseMs: number): SagaChange =>
    (saga) => ({ saga: { ...saga, leaseUntil: now + leaseMs } }),
  /** Only a running saga becomes paid: once compensation is decided, a late "charged" changes nothing. */
  paid: (): SagaChange => (saga) =>
    whileRunning(saga) ? { paid: true, saga: { ...saga, status: "done", owner: "", leaseUntil: 0 } } : null,
  compensate:
    (fromStep: number, error: AppError, now: number, leaseMs: number): SagaChange =>
    (saga) =>
      whileRunning(saga)
        ? {
            saga: {
              ...saga,
              status: "compensating",
              step: fromStep,
              error: { status: error.status, code: error.code, message: error.message },
              leaseUntil: now + leaseMs,
            },
          }
        : null,
  failed: (): SagaChange => (saga) =>
    saga.status === "compensating" ? { saga: { ...saga, status: "failed", owner: "", leaseUntil: 0 } } : null,
};

// ---- state changes ----

function orderOrNotFound(id: string, hash: Hash | null): Order {
  if (!hash) throw unknownOrder(id);
  return orderCodec.decode(hash);
}

export function createOrders(store: Store, instanceId: string, leaseMs: number) {
  const change = (op: string, id: string, rule: (order: Order | null) => Order | AppError) =>
    store.change(op, keys.order(id), orderCodec, rule);
  /**
   * Whether the driver is gone (false for nobody, and for this process): its presence connection is
   * closed, or its liveness key has expired. A process that dies closes its connections at once, so
   * Redis knows within a moment; the key covers a machine that vanished with its connections open.
   */
  const isGone = async (driver: string): Promise<boolean> => {
    if (driver === "" || driver === instanceId) return false;
    const [alive, presence] = throwOnReplyError(
      await store.client.pipeline().exists(keys.driverAlive(driver)).pubsub("NUMSUB", keys.driverAlive(driver)).exec(),
    ) as [number, [string, number]];
    return alive === 0 || Number(presence[1]) === 0;
  };
  /** This process's presence: a connection subscribed to its own liveness channel while it lives. */
  let presence: Redis | undefined;

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
        if (await isGone(start.driver)) start = await claim(id, nonce, new Set([start.driver]), resume);
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
    isOrphaned: async (saga: SagaRecord): Promise<boolean> =>
      isOrphaned(
        saga,
        instanceId,
        Date.now(),
        isUnfinished(saga) && saga.leaseUntil > Date.now() && (await isGone(saga.owner)),
      ),

    /** Refreshes this process's liveness key (keys.driverAlive) for `ttlMs`: its sagas are its own while it lives. */
    async stillAlive(ttlMs: number): Promise<void> {
      await store.client.set(keys.driverAlive(instanceId), "1", "PX", ttlMs);
    },

    /**
     * Opens this process's presence (see isGone); ioredis subscribes again after a reconnection.
     * Resolves once subscribed, or Redis did not answer (its sagas look gone meanwhile: others may drive them).
     */
    async announcePresence(): Promise<void> {
      presence ??= store.client.duplicate({ enableAutoPipelining: false, enableOfflineQueue: true });
      await presence.subscribe(keys.driverAlive(instanceId)).catch(() => {});
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

    /** The orders of the given ids that exist, read in one round trip. */
    async findMany(ids: readonly string[]): Promise<Array<[string, Order]>> {
      if (ids.length === 0) return [];
      const values = await store.client.mget(...ids.map((id) => keys.order(id)));
      return ids.flatMap((id, i) => {
        const hash = parseStored(values[i]);
        return hash ? [[id, orderCodec.decode(hash)] as [string, Order]] : [];
      });
    },
  };
}

export type OrderStore = ReturnType<typeof createOrders>;
