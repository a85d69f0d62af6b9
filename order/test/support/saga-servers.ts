/**
 * For the saga's test files (saga*.test.ts): real stock and payment services, each on its own real
 * Redis, and the order Redis the saga under test writes to, with the peers that can be scripted and
 * the helpers those files share.
 */
import { afterAll, beforeAll } from "bun:test";
import { TIMING, type Timing } from "@checkout/common/timing";
import { keys } from "@checkout/common/keyspace";
import { Store } from "@checkout/common/store";
import type { OrderStore } from "../../src/orders";
import { createPeers, type Peer, type PeerAnswer, type Peers } from "../../src/peers";
import { createCheckout, type Checkout } from "../../src/saga";
import { get, post, TEST_INTERNAL_SECRET } from "../../../common/test/support/http";
import type { RedisServer } from "../../../common/test/support/redis-server";
import { eventually } from "../../../common/test/support/eventually";
import { serviceConfig, type RunningService } from "../../../common/test/support/service";
import { type Participants, startParticipants } from "./participants";

export let stock: RunningService;
export let payment: RunningService;
export let orderStore: Store;
export let orderRedis: RedisServer;
export let real: Peers;

/**
 * Starts the servers before the calling file's tests (the bindings above are set then) and stops
 * them after: call it once, at the top of a test file.
 */
export function sagaServers(): void {
  let participants: Participants | undefined;
  beforeAll(async () => {
    participants = await startParticipants();
    ({ stock, payment, orderRedis } = participants);
    orderStore = await Store.open(serviceConfig("order", { redisPort: orderRedis.port, instanceId: INSTANCE }));
    real = createPeers([stock.url], [payment.url], TEST_INTERNAL_SECRET);
  });

  afterAll(async () => {
    await orderStore?.close();
    await participants?.stop();
  });
}

export const INSTANCE = "saga-test";
/**
 * Short enough that a lost answer turns into a compensation within the test; long enough that the
 * take, sent first, is answered within it, from the attempt's start, however loaded the machine.
 */
export const FORWARD_DEADLINE_MS = 5_000;
/** Sagas, compensations and expired leases are waited for this long at most: only a stuck one takes it. */
export const SETTLE_TIMEOUT_MS = 30_000;

export async function newItem(price: number, units: number): Promise<string> {
  const { body } = await post(`${stock.url}/item/create/${price}`);
  await post(`${stock.url}/add/${body.item_id}/${units}`);
  return body.item_id;
}

export async function newUser(credit: number): Promise<string> {
  const { body } = await post(`${payment.url}/create_user`);
  await post(`${payment.url}/add_funds/${body.user_id}/${credit}`);
  return body.user_id;
}

/** Price of the item every test order holds; it has ITEM_UNITS in stock. */
export const ITEM_PRICE = 5;
export const ITEM_UNITS = 10;

/** An order of `quantity` units of a new item, by a new user with `credit`, made through `orders`. */
export async function newOrder(
  orders: OrderStore,
  quantity: number,
  credit: number,
): Promise<{ id: string; item: string; user: string }> {
  const item = await newItem(ITEM_PRICE, ITEM_UNITS);
  const user = await newUser(credit);
  const id = await orders.create(user);
  await orders.addItem(id, item, quantity, ITEM_PRICE);
  return { id, item, user };
}

export const stockOf = async (id: string): Promise<number> => (await get(`${stock.url}/find/${id}`)).body.stock;
export const creditOf = async (id: string): Promise<number> =>
  (await get(`${payment.url}/find_user/${id}`)).body.credit;
export const sagaStatus = async (orderId: string) => (await orderStore.read(keys.order(orderId)))?.saga_status;
export const sagaFinished = (orderId: string) =>
  eventually(async () => ["done", "failed"].includes((await sagaStatus(orderId)) ?? ""), SETTLE_TIMEOUT_MS);
/** Whether `checkout` drives no saga any more (its stalled drivers have stopped). */
export const drivesNothing = (checkout: Checkout) =>
  eventually(async () => checkout.inFlight() === 0, SETTLE_TIMEOUT_MS);
/** Whether the lease recorded for the order's saga has run out, so that another driver may take it over. */
export const leaseRanOut = (orders: OrderStore, orderId: string) =>
  eventually(async () => (await orders.find(orderId)).saga.leaseUntil < Date.now(), SETTLE_TIMEOUT_MS);

/** A peer whose saga steps go through `route` first (to count, delay or drop them). */
export function scripted(
  peer: Peer,
  route: (action: string, send: () => Promise<PeerAnswer>) => Promise<PeerAnswer>,
): Peer {
  const step: Peer["step"] = (action, opId, fields) => route(action, () => peer.step(action, opId, fields));
  return Object.assign(Object.create(peer) as Peer, { step });
}

/** Leases and liveness keys that outlast any test: only a takeover rule under test can end them. */
export const HOUR_MS = 3_600_000;
export const LONG_LIVED = { ...TIMING, sagaLeaseMs: HOUR_MS, driverAliveTtlMs: HOUR_MS } as Timing;

/** The real peers, with every step they are sent recorded in `sent`. */
export function countingPeers(): { peers: Peers; sent: string[] } {
  const sent: string[] = [];
  const counting = (peer: Peer) =>
    scripted(peer, (action, send) => {
      sent.push(action);
      return send();
    });
  return { peers: { stock: counting(real.stock), payment: counting(real.payment) }, sent };
}

/**
 * A driver of the order's checkout that takes the stock and then hears nothing of the charge until
 * `release` answers it: to other processes it looks gone. Resolves once the charge has been sent.
 */
export async function stalledAtCharge(orders: OrderStore, orderId: string, timing: Timing) {
  const charge = Promise.withResolvers<PeerAnswer>();
  const chargeSent = Promise.withResolvers<void>();
  const silentPayment = scripted(real.payment, (action, send) => {
    if (action !== "charge") return send();
    chargeSent.resolve();
    return charge.promise;
  });
  const checkout = createCheckout(orders, { stock: real.stock, payment: silentPayment }, timing);
  const answered = checkout.checkout(orderId).catch((err) => err);
  await chargeSent.promise;
  return { checkout, answered, release: charge.resolve };
}
