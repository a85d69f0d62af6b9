/**
 * The checkout saga taken over: a driver that stalls or dies, and another process (or its own next
 * run) that takes its saga over, by lease, liveness key, presence or sweep, against real stock and
 * payment services and a real order Redis (saga.test.ts has one driver at a time).
 */
import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { TIMING } from "@checkout/common/timing";
import { attemptStart } from "@checkout/common/retention";
import { createOrders } from "../src/orders";
import { createCheckout } from "../src/saga";
import { driverAliveKey } from "../src/keys";
import { eventually } from "../../common/test/support/eventually";
import {
  countingPeers,
  creditOf,
  drivesNothing,
  HOUR_MS,
  ITEM_UNITS,
  leaseRanOut,
  LONG_LIVED,
  newOrder,
  orderRedis,
  orderStore,
  real,
  sagaFinished,
  sagaServers,
  sagaStatus,
  scripted,
  SETTLE_TIMEOUT_MS,
  stalledAtCharge,
  stockOf,
} from "./support/saga-servers";

/** Real servers on a shared machine: generous, so that load elsewhere never fails a test by time alone. */
setDefaultTimeout(60_000);

sagaServers();

describe("checkout saga", () => {
  test(
    "a saga taken over after its first step was applied sends that step again, it is applied " +
      "once, and the first driver answers the recorded outcome",
    async () => {
      const LEASE_MS = 100;
      const timing = { ...TIMING, sagaLeaseMs: LEASE_MS as typeof TIMING.sagaLeaseMs };
      const first = createOrders(orderStore, "driver-that-stalls", LEASE_MS);
      const { id, item: a, user } = await newOrder(first, 2, 100);

      // The first driver takes the stock, then never hears back from payment: to the others, it is gone.
      const { checkout: stalling, answered: stalledAnswer, release } = await stalledAtCharge(first, id, timing);
      expect(await stockOf(a)).toBe(8);

      expect(await leaseRanOut(first, id)).toBe(true);
      const { peers, sent } = countingPeers();
      const takeover = createCheckout(createOrders(orderStore, "driver-that-takes-over", LEASE_MS), peers, timing);
      expect(await takeover.checkout(id)).toEqual({ paid: true });
      expect(sent).toEqual(["take", "charge"]);
      expect([await stockOf(a), await creditOf(user)]).toEqual([8, 90]);

      // The stalled driver hears nothing in the end, finds the saga taken over, and stops; the request
      // it was driving for is answered with the outcome the other process recorded.
      release({ kind: "unknown", reason: "scripted: the answer was lost" });
      expect(await stalledAnswer).toEqual({ paid: true });
      expect(await drivesNothing(stalling)).toBe(true);
      expect([await stockOf(a), await creditOf(user), (await first.find(id)).paid]).toEqual([8, 90, true]);
    },
  );

  test(
    "a driver that restarts under its instance id takes its unfinished sagas back at once, long " +
      "before their lease runs out; other processes wait while it lives",
    async () => {
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
    },
  );

  test(
    "a checkout of an order whose driver's liveness key expired takes its saga over at once, " +
      "long before the lease runs out, and not while the driver lives",
    async () => {
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
    },
  );

  test(
    "a checkout of an order whose driver's process was killed takes its saga over at once, " +
      "though its liveness key has not expired",
    async () => {
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
    },
  );

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

  test(
    "a driver that took a saga over and never learns a step's outcome undoes every step: a " +
      "later step still in flight from the stalled driver is fenced",
    async () => {
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
    },
  );

  test(
    "a driver that takes a saga over once its attempt's forward deadline has passed sends no " +
      "forward step and undoes every step",
    async () => {
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
      const { peers, sent } = countingPeers();
      const takeover = createCheckout(createOrders(orderStore, "driver-that-takes-over", LEASE_MS), peers, timing);
      expect(await takeover.checkout(id)).toMatchObject({ paid: false, error: { code: "peer_unavailable" } });
      expect(await sagaFinished(id)).toBe(true);
      expect(sent).toEqual(["refund", "restore"]);

      release({ kind: "unknown", reason: "scripted: the answer was lost" });
      expect(await stalledAnswer).toMatchObject({ paid: false });
      expect(await drivesNothing(stalling)).toBe(true);
      expect([await stockOf(a), await creditOf(user), (await first.find(id)).paid]).toEqual([ITEM_UNITS, 100, false]);
    },
  );
});
