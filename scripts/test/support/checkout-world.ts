/**
 * A shop under test, through the public gateway: items and users made with batch_init (some items
 * scarce, some users poor, so that checkouts are refused for both reasons), orders made through the
 * API, checkouts streamed at it, and the invariants checked over everything it ever did.
 */
import { Redis } from "ioredis";
import { keys } from "../../../common/src/keyspace";
import { Api, createSession, forEachLimited, SIDE_CONCURRENCY } from "../../bench/client";
import { runLoad, type LoadFault, type LoadResult } from "../../bench/load";
import { addedItemBody, batchInitBody, createdOrderBody, creditChangeBody, stockChangeBody } from "../../bench/schemas";
import { readCredit, readOrders, readStock } from "../../bench/state";
import { checkInvariants, type InvariantReport } from "../../bench/verify";

export type WorldShape = {
  items: number;
  stockEach: number;
  /** Items 0 … scarce-1 keep a single unit. */
  scarce: number;
  users: number;
  creditEach: number;
  /** Users 0 … poor-1 keep a credit of 1 (an order costs at least 1). */
  poor: number;
};

/** How long a saga may still be running (lease expiry, take-over, compensation) once the load is over. */
const SETTLE_TIMEOUT_MS = 60_000;
const SETTLE_POLL_MS = 100;

/** A small deterministic generator: the same world every run, so a failure can be replayed. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export class CheckoutWorld {
  readonly api: Api;
  readonly session = createSession(SIDE_CONCURRENCY);
  readonly orderIds: string[] = [];
  /** The last answer each checked-out order got (HTTP status, or a negative code for network errors). */
  readonly answers = new Map<string, number>();
  private readonly random: () => number;
  readonly initialStock = new Map<string, number>();
  readonly initialCredit = new Map<string, number>();

  constructor(
    readonly gatewayUrl: string,
    readonly shape: WorldShape,
    seed = 1,
  ) {
    this.api = new Api(gatewayUrl, this.session);
    this.random = seededRandom(seed);
  }

  async create(): Promise<void> {
    const { items, stockEach, scarce, users, creditEach, poor } = this.shape;
    await this.api.post(`/stock/batch_init/${items}/${stockEach}/1`, batchInitBody);
    await this.api.post(`/payment/batch_init/${users}/${creditEach}`, batchInitBody);
    await forEachLimited([...Array(scarce).keys()], SIDE_CONCURRENCY, (i) =>
      this.api.post(`/stock/subtract/${i}/${stockEach - 1}`, stockChangeBody).then(() => {}),
    );
    await forEachLimited([...Array(poor).keys()], SIDE_CONCURRENCY, (i) =>
      this.api.post(`/payment/pay/${i}/${creditEach - 1}`, creditChangeBody).then(() => {}),
    );
    for (let i = 0; i < items; i++) this.initialStock.set(String(i), i < scarce ? 1 : stockEach);
    for (let i = 0; i < users; i++) this.initialCredit.set(String(i), i < poor ? 1 : creditEach);
  }

  /** New orders of one or two lines (quantity 1 or 2) of random items, for random users. */
  async addOrders(count: number): Promise<string[]> {
    const pick = (n: number) => String(Math.floor(this.random() * n));
    return this.placeOrders(
      Array.from({ length: count }, () => ({
        user: pick(this.shape.users),
        lines: Array.from(
          { length: 1 + Math.floor(this.random() * 2) },
          () => [pick(this.shape.items), 1 + Math.floor(this.random() * 2)] as const,
        ),
      })),
    );
  }

  /** New orders exactly as planned: a user and [item, quantity] lines each. */
  async placeOrders(
    plans: ReadonlyArray<{ user: string; lines: ReadonlyArray<readonly [string, number]> }>,
  ): Promise<string[]> {
    const ids = new Array<string>(plans.length);
    await forEachLimited(plans, SIDE_CONCURRENCY, async (plan, i) => {
      const { order_id } = await this.api.post(`/orders/create/${plan.user}`, createdOrderBody);
      for (const [item, quantity] of plan.lines)
        await this.api.post(`/orders/addItem/${order_id}/${item}/${quantity}`, addedItemBody);
      ids[i] = order_id;
    });
    this.orderIds.push(...ids);
    return ids;
  }

  /** Checks out each order once, `clients` at a time; `fault` is injected mid-way (see LoadFault). */
  async checkOut(orderIds: readonly string[], clients: number, fault?: LoadFault): Promise<LoadResult> {
    const result = await runLoad({
      urls: orderIds.map((id) => `${this.gatewayUrl}/orders/checkout/${id}`),
      clients,
      durationMs: 10 * 60_000,
      session: this.session,
      fault,
    });
    for (const [i, id] of orderIds.entries()) this.answers.set(id, result.statuses[i]!);
    return result;
  }

  /** Resolves once the order service has no unfinished saga left (every one paid or compensated). */
  async settle(orderRedisPort: number): Promise<void> {
    const redis = new Redis({ port: orderRedisPort, lazyConnect: true, maxRetriesPerRequest: 1 });
    redis.on("error", () => {});
    const deadline = Date.now() + SETTLE_TIMEOUT_MS;
    try {
      for (;;) {
        const unfinished = await redis.scard(keys.activeSagas).catch(() => -1);
        if (unfinished === 0) return;
        if (Date.now() > deadline)
          throw new Error(`${unfinished} sagas still unfinished after ${SETTLE_TIMEOUT_MS} ms`);
        await Bun.sleep(SETTLE_POLL_MS);
      }
    } finally {
      redis.disconnect();
    }
  }

  /** Stock and money conserved over everything so far; every 2xx is a paid order, every 4xx is not. */
  async invariants(): Promise<InvariantReport> {
    const [currentStock, currentCredit, orders] = await Promise.all([
      readStock(this.api, [...this.initialStock.keys()]),
      readCredit(this.api, [...this.initialCredit.keys()]),
      readOrders(this.api, this.orderIds),
    ]);
    return checkInvariants({
      initialStock: this.initialStock,
      currentStock,
      initialCredit: this.initialCredit,
      currentCredit,
      orders,
      answers: this.answers,
    });
  }

  close(): void {
    this.session.close();
  }
}
