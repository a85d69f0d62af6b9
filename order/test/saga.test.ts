/**
 * The checkout saga driven in-process (createCheckout) against real stock and payment services and a
 * real order Redis, with peers that can be scripted: a step whose answer is lost, an answer that
 * arrives late. The saga must stay consistent whatever the network does.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { TIMING, type Timing } from "@checkout/common/timing";
import { keys } from "@checkout/common/keyspace";
import { AppError } from "@checkout/common/errors";
import { attemptStart } from "@checkout/common/retention";
import { Store } from "@checkout/common/store";
import { createOrders, type OrderStore } from "../src/orders";
import { createPeers, type Peer, type PeerAnswer, type Peers } from "../src/peers";
import { createCheckout, type Checkout } from "../src/saga";
import { driverAliveKey } from "../src/keys";
import { get, post, TEST_INTERNAL_SECRET } from "../../common/test/support/http";
import { startRedis, type RedisServer } from "../../common/test/support/redis-server";
import { eventually } from "../../common/test/support/eventually";
import { serviceConfig, startService, type RunningService } from "../../common/test/support/service";

/** Real servers on a shared machine: generous, so that load elsewhere never fails a test by time alone. */
setDefaultTimeout(60_000);

const INSTANCE = "saga-test";
/**
 * Short enough that a lost answer turns into a compensation within the test; long enough that the
 * take, sent first, is answered within it, from the attempt's start, however loaded the machine.
 */
const FORWARD_DEADLINE_MS = 5_000;
/** Sagas, compensations and expired leases are waited for this long at most: only a stuck one takes it. */
const SETTLE_TIMEOUT_MS = 30_000;

const redises: RedisServer[] = [];
let stock: RunningService;
let payment: RunningService;
let orderStore: Store;
let orderRedis: RedisServer;
let real: Peers;

beforeAll(async () => {
  const [forStock, forPayment, forOrder] = await Promise.all([
    startRedis({ logFor: { service: "stock" } }),
    startRedis({ logFor: { service: "payment" } }),
    startRedis({ logFor: { service: "order" } }),
  ]);
  redises.push(forStock, forPayment, forOrder);
  orderRedis = forOrder;
  stock = await startService("stock", { redisPort: forStock.port });
  payment = await startService("payment", { redisPort: forPayment.port });
  orderStore = await Store.open(serviceConfig("order", { redisPort: forOrder.port, instanceId: INSTANCE }));
  real = createPeers([stock.url], [payment.url], TEST_INTERNAL_SECRET);
});

afterAll(async () => {
  await orderStore?.close();
  await stock?.stop();
  await payment?.stop();
  for (const redis of redises) await redis.stop();
});

async function newItem(price: number, units: number): Promise<string> {
  const { body } = await post(`${stock.url}/item/create/${price}`);
  await post(`${stock.url}/add/${body.item_id}/${units}`);
  return body.item_id;
}

async function newUser(credit: number): Promise<string> {
  const { body } = await post(`${payment.url}/create_user`);
  await post(`${payment.url}/add_funds/${body.user_id}/${credit}`);
  return body.user_id;
}

/** Price of the item every test order holds; it has ITEM_UNITS in stock. */
const ITEM_PRICE = 5;
const ITEM_UNITS = 10;

/** An order of `quantity` units of a new item, by a new user with `credit`, made through `orders`. */
async function newOrder(
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

const stockOf = async (id: string): Promise<number> => (await get(`${stock.url}/find/${id}`)).body.stock;
const creditOf = async (id: string): Promise<number> => (await get(`${payment.url}/find_user/${id}`)).body.credit;
const sagaStatus = async (orderId: string) => (await orderStore.read(keys.order(orderId)))?.saga_status;
const sagaFinished = (orderId: string) =>
  eventually(async () => ["done", "failed"].includes((await sagaStatus(orderId)) ?? ""), SETTLE_TIMEOUT_MS);
/** Whether `checkout` drives no saga any more (its stalled drivers have stopped). */
const drivesNothing = (checkout: Checkout) => eventually(async () => checkout.inFlight() === 0, SETTLE_TIMEOUT_MS);
/** Whether the lease recorded for the order's saga has run out, so that another driver may take it over. */
const leaseRanOut = (orders: OrderStore, orderId: string) =>
  eventually(async () => (await orders.find(orderId)).saga.leaseUntil < Date.now(), SETTLE_TIMEOUT_MS);

/** A peer whose saga steps go through `route` first (to count, delay or drop them). */
function scripted(peer: Peer, route: (action: string, send: () => Promise<PeerAnswer>) => Promise<PeerAnswer>): Peer {
  const step: Peer["step"] = (action, opId, fields) => route(action, () => peer.step(action, opId, fields));
  return Object.assign(Object.create(peer) as Peer, { step });
}

/** Leases and liveness keys that outlast any test: only a takeover rule under test can end them. */
const HOUR_MS = 3_600_000;
const LONG_LIVED = { ...TIMING, sagaLeaseMs: HOUR_MS, driverAliveTtlMs: HOUR_MS } as Timing;

/** The real peers, with every step they are sent recorded in `sent`. */
function countingPeers(): { peers: Peers; sent: string[] } {
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
async function stalledAtCharge(orders: OrderStore, orderId: string, timing: Timing) {
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

describe("checkout saga", () => {
  test("two concurrent checkouts of one order in one process drive its saga once", async () => {
    const orders = createOrders(orderStore, INSTANCE, TIMING.sagaLeaseMs);
    const { id } = await newOrder(orders, 1, 100);

    const sent: string[] = [];
    const counting = (peer: Peer) =>
      scripted(peer, (action, send) => {
        sent.push(action);
        return send();
      });
    const checkout = createCheckout(orders, { stock: counting(real.stock), payment: counting(real.payment) });

    const outcomes = await Promise.all([checkout.checkout(id), checkout.checkout(id)]);
    expect(outcomes).toEqual([{ paid: true }, { paid: true }]);
    expect(sent).toEqual(["take", "charge"]);
  });

  test("an order is never paid for a charge that was refunded, even when two checkouts of it race in one process", async () => {
    const orders = createOrders(orderStore, INSTANCE, TIMING.sagaLeaseMs);
    const { id, item: a, user } = await newOrder(orders, 2, 100);

    // The first charge is held on its way to payment and its answer is lost; the copies the driver
    // sends again are lost too, until its deadline passes and it compensates. The held charge lands
    // once that compensation is decided, and the refund only after it.
    const landed: string[] = [];
    const lateChargeLanded = Promise.withResolvers<void>();
    const landOnceCompensating = async (send: () => Promise<PeerAnswer>) => {
      const compensating = await eventually(async () => (await sagaStatus(id)) === "compensating", SETTLE_TIMEOUT_MS);
      const answer = await send();
      landed.push(`charge ${answer.kind} ${compensating ? "after" : "without"} the decision to compensate`);
      lateChargeLanded.resolve();
    };
    let charges = 0;
    const flakyPayment = scripted(real.payment, async (action, send) => {
      if (action === "charge") {
        if (++charges === 1) void landOnceCompensating(send);
        return { kind: "unknown", reason: "scripted: the answer was lost" };
      }
      if (action === "refund") {
        await lateChargeLanded.promise;
        landed.push("refund");
      }
      return send();
    });
    const checkout = createCheckout(
      orders,
      { stock: real.stock, payment: flakyPayment },
      {
        ...TIMING,
        // createCheckout's `timing` is typed as TIMING's literal values, so another value needs a cast.
        forwardStepDeadlineMs: FORWARD_DEADLINE_MS as typeof TIMING.forwardStepDeadlineMs,
      },
    );

    const outcomes = await Promise.all([checkout.checkout(id), checkout.checkout(id)]);
    expect(await sagaFinished(id)).toBe(true);
    expect(await drivesNothing(checkout)).toBe(true);
    expect(landed).toEqual(["charge ok after the decision to compensate", "refund"]);

    const paid = (await orders.find(id)).paid;
    const charged = (await creditOf(user)) === 90;
    const taken = (await stockOf(a)) === 8;
    expect({ paid, charged, taken }).toEqual({ paid, charged: paid, taken: paid });
    // Every answer given for the order agrees with what the databases say.
    expect(outcomes.map((o) => o.paid)).toEqual([paid, paid]);
  });

  test("a checkout that comes after a failure was answered, while its compensations still run, is a new attempt once they end", async () => {
    const orders = createOrders(orderStore, INSTANCE, TIMING.sagaLeaseMs);
    const { id, item: a, user } = await newOrder(orders, 1, 4);

    // The restore is held until the second checkout has arrived, and funds have been added.
    const secondArrived = Promise.withResolvers<void>();
    const slowRestore = scripted(real.stock, async (action, send) => {
      if (action === "restore") await secondArrived.promise;
      return send();
    });
    const checkout = createCheckout(orders, { stock: slowRestore, payment: real.payment });

    const first = await checkout.checkout(id);
    expect(first).toMatchObject({ paid: false, error: { code: "insufficient_credit" } });
    expect(await sagaStatus(id)).toBe("compensating");
    await post(`${payment.url}/add_funds/${user}/1`);
    const second = checkout.checkout(id);
    secondArrived.resolve();
    expect(await second).toEqual({ paid: true });
    expect([await stockOf(a), await creditOf(user)]).toEqual([9, 0]);
  });

  test("a sweep's claim of an attempt that failed after the sweep saw it orphaned starts no new attempt, even one that would now be paid", async () => {
    const orders = createOrders(orderStore, INSTANCE, TIMING.sagaLeaseMs);
    const { id, item: a, user } = await newOrder(orders, 1, 4);
    expect(await createCheckout(orders, real).checkout(id)).toMatchObject({
      paid: false,
      error: { code: "insufficient_credit" },
    });
    expect(await sagaFinished(id)).toBe(true);
    // What the sweep read: the attempt, still unfinished then. Since then it failed, and money came in.
    const seenBySweep = (await orders.find(id)).saga.opId;
    await post(`${payment.url}/add_funds/${user}/1`);

    const { peers, sent } = countingPeers();
    const sweeper = createCheckout(createOrders(orderStore, "order-replica-sweeping", TIMING.sagaLeaseMs), peers);
    expect(await sweeper.checkout(id, seenBySweep)).toMatchObject({ paid: false });
    expect(sent).toEqual([]);
    const order = await orders.find(id);
    expect([order.paid, order.saga.status, order.saga.opId]).toEqual([false, "failed", seenBySweep]);
    expect([await stockOf(a), await creditOf(user)]).toEqual([ITEM_UNITS, 5]);
  });

  test("a saga taken over after its first step was applied sends that step again, it is applied once, and the first driver answers the recorded outcome", async () => {
    const LEASE_MS = 100;
    const timing = { ...TIMING, sagaLeaseMs: LEASE_MS as typeof TIMING.sagaLeaseMs };
    const first = createOrders(orderStore, "driver-that-stalls", LEASE_MS);
    const { id, item: a, user } = await newOrder(first, 2, 100);

    // The first driver takes the stock, then never hears back from payment: to the others, it is gone.
    const { checkout: stalling, answered: stalledAnswer, release } = await stalledAtCharge(first, id, timing);
    expect(await stockOf(a)).toBe(8);

    expect(await leaseRanOut(first, id)).toBe(true);
    const sent: string[] = [];
    const counting = (peer: Peer) =>
      scripted(peer, (action, send) => {
        sent.push(action);
        return send();
      });
    const takeover = createCheckout(
      createOrders(orderStore, "driver-that-takes-over", LEASE_MS),
      { stock: counting(real.stock), payment: counting(real.payment) },
      timing,
    );
    expect(await takeover.checkout(id)).toEqual({ paid: true });
    expect(sent).toEqual(["take", "charge"]);
    expect([await stockOf(a), await creditOf(user)]).toEqual([8, 90]);

    // The stalled driver hears nothing in the end, finds the saga taken over, and stops; the request
    // it was driving for is answered with the outcome the other process recorded.
    release({ kind: "unknown", reason: "scripted: the answer was lost" });
    expect(await stalledAnswer).toEqual({ paid: true });
    expect(await drivesNothing(stalling)).toBe(true);
    expect([await stockOf(a), await creditOf(user), (await first.find(id)).paid]).toEqual([8, 90, true]);
  });

  test("a driver that restarts under its instance id takes its unfinished sagas back at once, long before their lease runs out; other processes wait while it lives", async () => {
    const before = createOrders(orderStore, "order-replica-1", HOUR_MS);
    const { id, item: a, user } = await newOrder(before, 2, 100);

    // The first run of the replica takes the stock, then dies waiting for payment's answer.
    const { checkout: firstRun, answered: firstAnswer, release } = await stalledAtCharge(before, id, LONG_LIVED);
    await firstRun.start();

    const { peers, sent } = countingPeers();
    // Another replica leaves it alone: the driver lives, and the lease has most of an hour to run.
    await createCheckout(createOrders(orderStore, "order-replica-2", HOUR_MS), peers, LONG_LIVED).sweep();
    expect(await sagaStatus(id)).toBe("running");
    expect(sent).toEqual([]);

    // The replica's next run, under the same instance id, finishes it from its first sweep.
    firstRun.stop();
    await createCheckout(createOrders(orderStore, "order-replica-1", HOUR_MS), peers, LONG_LIVED).sweep();
    expect(await sagaFinished(id)).toBe(true);
    expect(sent).toEqual(["take", "charge"]);
    expect([await stockOf(a), await creditOf(user), (await before.find(id)).paid]).toEqual([8, 90, true]);

    release({ kind: "unknown", reason: "scripted: the process died" });
    expect(await firstAnswer).toEqual({ paid: true });
    expect(await drivesNothing(firstRun)).toBe(true);
  });

  test("a checkout of an order whose driver's liveness key expired takes its saga over at once, long before the lease runs out, and not while the driver lives", async () => {
    const dying = createOrders(orderStore, "order-replica-that-dies", HOUR_MS);
    const { id, item: a, user } = await newOrder(dying, 2, 100);
    const { checkout: firstDriver, answered: firstAnswer, release } = await stalledAtCharge(dying, id, LONG_LIVED);
    await firstDriver.start();

    const other = createOrders(orderStore, "order-replica-that-lives", HOUR_MS);
    expect(await other.startCheckout(id)).toMatchObject({ kind: "wait", driver: "order-replica-that-dies" });

    // Its machine is lost: its connections stay open on Redis's side, but its liveness key expires (here, at once).
    await orderStore.client.del(driverAliveKey("order-replica-that-dies"));
    const { peers, sent } = countingPeers();
    expect(await createCheckout(other, peers, LONG_LIVED).checkout(id)).toEqual({ paid: true });
    expect(sent).toEqual(["take", "charge"]);
    expect([await stockOf(a), await creditOf(user)]).toEqual([8, 90]);

    firstDriver.stop();
    release({ kind: "unknown", reason: "scripted: the process died" });
    expect(await firstAnswer).toEqual({ paid: true });
  });

  test("a checkout of an order whose driver's process was killed takes its saga over at once, though its liveness key has not expired", async () => {
    const driver = "order-replica-killed";
    const dying = createOrders(orderStore, driver, HOUR_MS);
    const { id, item: a, user } = await newOrder(dying, 2, 100);
    const { checkout: firstDriver, answered: firstAnswer, release } = await stalledAtCharge(dying, id, LONG_LIVED);
    // The driver's presence is a real process subscribed to its liveness channel; its key lives an hour.
    await orderStore.client.set(driverAliveKey(driver), "1", "PX", HOUR_MS);
    const presence = Bun.spawn(["redis-cli", "-p", String(orderRedis.port), "subscribe", driverAliveKey(driver)], {
      stdout: "ignore",
    });
    const subscribers = async () =>
      Number(((await orderStore.client.pubsub("NUMSUB", driverAliveKey(driver))) as [string, number])[1]);
    expect(await eventually(async () => (await subscribers()) === 1)).toBe(true);

    const other = createOrders(orderStore, "order-replica-that-lives", HOUR_MS);
    expect(await other.isOrphaned((await dying.find(id)).saga)).toBe(false);

    presence.kill("SIGKILL");
    await presence.exited;
    expect(await eventually(async () => (await subscribers()) === 0)).toBe(true);
    expect(await orderStore.client.exists(driverAliveKey(driver))).toBe(1);
    const { peers, sent } = countingPeers();
    expect(await createCheckout(other, peers, LONG_LIVED).checkout(id)).toEqual({ paid: true });
    expect(sent).toEqual(["take", "charge"]);
    expect([await stockOf(a), await creditOf(user)]).toEqual([8, 90]);

    firstDriver.stop();
    release({ kind: "unknown", reason: "scripted: the process died" });
    expect(await firstAnswer).toEqual({ paid: true });
  });

  test("a sweep takes over the sagas of every driver that is gone, and none of a driver that lives", async () => {
    const gone = createOrders(orderStore, "order-replica-gone", HOUR_MS);
    const alive = createOrders(orderStore, "order-replica-alive", HOUR_MS);
    // Both drivers live (present, and their liveness keys set, as their beats would), and each stalls at a charge.
    await Promise.all([gone.announcePresence(), alive.announcePresence()]);
    await Promise.all([gone.stillAlive(HOUR_MS), alive.stillAlive(HOUR_MS)]);
    const orphans = [await newOrder(gone, 1, 100), await newOrder(gone, 1, 100)];
    const kept = await newOrder(alive, 1, 100);
    const stalled = [
      ...(await Promise.all(orphans.map(({ id }) => stalledAtCharge(gone, id, LONG_LIVED)))),
      await stalledAtCharge(alive, kept.id, LONG_LIVED),
    ];

    // One of them is lost with its machine: its liveness key expires (here, at once), its connection lingers.
    await orderStore.client.del(driverAliveKey("order-replica-gone"));
    const { peers, sent } = countingPeers();
    await createCheckout(createOrders(orderStore, "order-replica-sweeping", HOUR_MS), peers, LONG_LIVED).sweep();
    for (const { id } of orphans) expect(await sagaFinished(id)).toBe(true);
    expect(sent.sort()).toEqual(["charge", "charge", "take", "take"]);
    expect(await sagaStatus(kept.id)).toBe("running");

    for (const orders of [gone, alive]) orders.withdrawPresence();
    for (const { release } of stalled) release({ kind: "unknown", reason: "scripted: the process died" });
    expect(await Promise.all(stalled.map(({ answered }) => answered))).toEqual([
      { paid: true },
      { paid: true },
      { paid: false, error: expect.objectContaining({ code: "peer_unavailable" }) },
    ]);
  });

  test("a compensation the participant refuses is sent again until it is applied, and only then is the saga failed", async () => {
    const timing = { ...TIMING, forwardStepDeadlineMs: 100 as typeof TIMING.forwardStepDeadlineMs };
    const orders = createOrders(orderStore, INSTANCE, TIMING.sagaLeaseMs);
    const { id, item: a, user } = await newOrder(orders, 2, 100);

    // The charge is applied but its answer is lost; the refund is refused twice (as a refund past
    // 2^53-1 would be) before it goes through.
    let refunds = 0;
    const payment = scripted(real.payment, async (action, send) => {
      if (action === "charge") {
        await send();
        return { kind: "unknown", reason: "scripted: the answer was lost" };
      }
      if (action === "refund" && ++refunds <= 2)
        return { kind: "refused", error: new AppError(400, "invalid_input", "scripted: would exceed") };
      return send();
    });
    const checkout = createCheckout(orders, { stock: real.stock, payment }, timing);
    expect(await checkout.checkout(id)).toMatchObject({ paid: false, error: { code: "peer_unavailable" } });
    expect(await sagaFinished(id)).toBe(true);
    expect(await sagaStatus(id)).toBe("failed");
    expect({ refunds, stock: await stockOf(a), credit: await creditOf(user) }).toEqual({
      refunds: 3,
      stock: ITEM_UNITS,
      credit: 100,
    });
  });

  test("a checkout that comes while the previous attempt cannot finish undoing answers 409 checkout_in_progress at the answer deadline", async () => {
    const timing = {
      ...TIMING,
      forwardStepDeadlineMs: 100 as typeof TIMING.forwardStepDeadlineMs,
      checkoutAnswerDeadlineMs: 500 as typeof TIMING.checkoutAnswerDeadlineMs,
    };
    const orders = createOrders(orderStore, INSTANCE, TIMING.sagaLeaseMs);
    const { id, item: a, user } = await newOrder(orders, 2, 100);

    // The charge is applied but its answer is lost; the refund is refused until the test lets it through.
    let refusing = true;
    const payment = scripted(real.payment, async (action, send) => {
      if (action === "charge") {
        await send();
        return { kind: "unknown", reason: "scripted: the answer was lost" };
      }
      if (action === "refund" && refusing)
        return { kind: "refused", error: new AppError(400, "invalid_input", "scripted: would exceed") };
      return send();
    });
    const checkout = createCheckout(orders, { stock: real.stock, payment }, timing);
    expect(await checkout.checkout(id)).toMatchObject({ paid: false, error: { code: "peer_unavailable" } });
    expect(await checkout.checkout(id)).toMatchObject({ paid: false, error: { code: "checkout_in_progress" } });

    refusing = false;
    expect(await sagaFinished(id)).toBe(true);
    expect([await stockOf(a), await creditOf(user)]).toEqual([ITEM_UNITS, 100]);
  });

  test("a driver that took a saga over and never learns a step's outcome undoes every step: a later step still in flight from the stalled driver is fenced", async () => {
    const LEASE_MS = 100;
    const timing = {
      ...TIMING,
      sagaLeaseMs: LEASE_MS as typeof TIMING.sagaLeaseMs,
      forwardStepDeadlineMs: 200 as typeof TIMING.forwardStepDeadlineMs,
    };
    const first = createOrders(orderStore, "driver-that-stalls", LEASE_MS);
    const { id, item: a, user } = await newOrder(first, 2, 100);

    // The first driver takes the stock; its charge is held in flight until the takeover has ended.
    const releaseCharge = Promise.withResolvers<void>();
    const chargeSent = Promise.withResolvers<void>();
    const slowPayment = scripted(real.payment, async (action, send) => {
      if (action !== "charge") return send();
      chargeSent.resolve();
      await releaseCharge.promise;
      return send();
    });
    const stalling = createCheckout(first, { stock: real.stock, payment: slowPayment }, timing);
    const stalledAnswer = stalling.checkout(id).catch((err) => err);
    await chargeSent.promise;
    expect(await leaseRanOut(first, id)).toBe(true);

    // The second driver cannot reach stock for its take until its deadline passes.
    const unreachableStock = scripted(real.stock, async (action, send) =>
      action === "take" ? { kind: "unknown", reason: "scripted: stock down" } : send(),
    );
    const takeover = createCheckout(
      createOrders(orderStore, "driver-that-takes-over", LEASE_MS),
      { stock: unreachableStock, payment: real.payment },
      timing,
    );
    expect(await takeover.checkout(id)).toMatchObject({ paid: false, error: { code: "peer_unavailable" } });
    expect(await sagaFinished(id)).toBe(true);

    // The held charge arrives after the refund that fenced it: refused, nothing taken; the first
    // driver's request is answered with the recorded failure.
    releaseCharge.resolve();
    expect(await stalledAnswer).toMatchObject({ paid: false, error: { code: "peer_unavailable" } });
    expect(await drivesNothing(stalling)).toBe(true);
    expect([await stockOf(a), await creditOf(user), (await first.find(id)).paid]).toEqual([ITEM_UNITS, 100, false]);
  });

  test("a driver that takes a saga over once its attempt's forward deadline has passed sends no forward step and undoes every step", async () => {
    const LEASE_MS = 100;
    const FORWARD_MS = 300;
    const timing = {
      ...TIMING,
      sagaLeaseMs: LEASE_MS as typeof TIMING.sagaLeaseMs,
      forwardStepDeadlineMs: FORWARD_MS as typeof TIMING.forwardStepDeadlineMs,
    };
    const first = createOrders(orderStore, "driver-that-stalls", LEASE_MS);
    const { id, item: a, user } = await newOrder(first, 2, 100);
    const { checkout: stalling, answered: stalledAnswer, release } = await stalledAtCharge(first, id, timing);
    const started = attemptStart((await first.find(id)).saga.opId)!;
    expect(await leaseRanOut(first, id)).toBe(true);
    expect(await eventually(async () => Date.now() > started + FORWARD_MS, SETTLE_TIMEOUT_MS)).toBe(true);

    // The deadline counts from the attempt's start, not from the takeover: the step records'
    // retention rests on it (common/src/timing.ts, minStepRecordRetentionMs).
    const sent: string[] = [];
    const counting = (peer: Peer) =>
      scripted(peer, (action, send) => {
        sent.push(action);
        return send();
      });
    const takeover = createCheckout(
      createOrders(orderStore, "driver-that-takes-over", LEASE_MS),
      { stock: counting(real.stock), payment: counting(real.payment) },
      timing,
    );
    expect(await takeover.checkout(id)).toMatchObject({ paid: false, error: { code: "peer_unavailable" } });
    expect(await sagaFinished(id)).toBe(true);
    expect(sent).toEqual(["refund", "restore"]);

    release({ kind: "unknown", reason: "scripted: the answer was lost" });
    expect(await stalledAnswer).toMatchObject({ paid: false });
    expect(await drivesNothing(stalling)).toBe(true);
    expect([await stockOf(a), await creditOf(user), (await first.find(id)).paid]).toEqual([ITEM_UNITS, 100, false]);
  });
});
