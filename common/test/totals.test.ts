/** The conservation meter's running totals: what each change adds (pure), and that they match the entities. */
import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { keys } from "@checkout/common/keyspace";
import type { Hash } from "@checkout/common/log";
import { readTotals, rebuildTotals, totalsDelta } from "@checkout/common/totals";
import { internalAuthorization } from "@checkout/common/internal";
import { call, get, post, step, TEST_INTERNAL_SECRET } from "./support/http";
import { serviceOnItsOwnRedis, startService } from "./support/service";
import { startRedis } from "./support/redis-server";

setDefaultTimeout(30_000);

const write = (key: string, hash: Record<string, string>, seq = 1) => ({ key, hash, seq });

describe("totalsDelta", () => {
  test("a take moves units from the items held to the step's record: nothing to put_in", () => {
    const before = new Map<string, Hash>([["item:a", { stock: "10", price: "2" }]]);
    const delta = totalsDelta(
      "stock",
      [write("item:a", { stock: "7", price: "2" }), write("op:o:1.x", { items: '[["a",3]]', state: "applied" })],
      before,
      () => "stock.take",
    );
    expect(delta).toEqual({ held: -3, in_steps: 3 });
  });

  test("a restore moves them back", () => {
    const before = new Map<string, Hash>([
      ["item:a", { stock: "7", price: "2" }],
      ["op:o:1.x", { items: '[["a",3]]', state: "applied" }],
    ]);
    const delta = totalsDelta(
      "stock",
      [write("item:a", { stock: "10", price: "2" }), write("op:o:1.x", { items: '[["a",3]]', state: "compensated" })],
      before,
      () => "stock.restore",
    );
    expect(delta).toEqual({ held: 3, in_steps: -3 });
  });

  test("a take that took twice what its record says parts the two sides", () => {
    const before = new Map<string, Hash>([["item:a", { stock: "10", price: "2" }]]);
    const delta = totalsDelta(
      "stock",
      [write("item:a", { stock: "4", price: "2" }), write("op:o:1.x", { items: '[["a",3]]', state: "applied" })],
      before,
      () => "stock.take",
    );
    expect((delta.held ?? 0) + (delta.in_steps ?? 0)).toBe(-3);
  });

  test("every other change is a flow in or out, counted in put_in", () => {
    const before = new Map([["user:u", { credit: "5" }]]);
    expect(totalsDelta("payment", [write("user:u", { credit: "9" })], before, () => "payment.add_funds")).toEqual({
      held: 4,
      put_in: 4,
    });
    expect(totalsDelta("payment", [write("user:n", { credit: "0" })], new Map(), () => "payment.create_user")).toEqual(
      {},
    );
  });

  test("a key written twice in one batch counts from its state before the batch, through each write", () => {
    const before = new Map([["user:u", { credit: "10" }]]);
    const ops = new Map([
      [1, "payment.charge"],
      [2, "payment.add_funds"],
    ]);
    const delta = totalsDelta(
      "payment",
      [
        write("user:u", { credit: "4" }, 1),
        write("op:o:1.x", { user_id: "u", amount: "6", state: "applied" }, 1),
        write("user:u", { credit: "5" }, 2),
      ],
      before,
      (seq) => ops.get(seq)!,
    );
    expect(delta).toEqual({ held: -5, in_steps: 6, put_in: 1 });
  });

  test("the order service keeps no totals", () => {
    expect(totalsDelta("order", [write("order:o", { paid: "true" })], new Map(), () => "order.saga_paid")).toEqual({});
  });
});

describe("the running totals of a stock service", () => {
  const { url, state } = serviceOnItsOwnRedis("stock");

  /** The totals counted from the entities themselves. */
  async function counted(): Promise<{ held: number; in_steps: number }> {
    const entities = await state();
    let held = 0;
    let inSteps = 0;
    for (const [key, { type, value }] of Object.entries(entities)) {
      if (type !== "string") continue;
      const hash = JSON.parse(String(value)) as Record<string, string>;
      if (key.startsWith("item:")) held += Number(hash.stock);
      if (key.startsWith("op:") && hash.state === "applied")
        inSteps += (JSON.parse(hash.items!) as Array<[string, number]>).reduce((sum, [, n]) => sum + n, 0);
    }
    return { held, in_steps: inSteps };
  }

  test("match the items and step records through every kind of change, and balance", async () => {
    const { body } = await post(url("/item/create/3"));
    const id = body.item_id as string;
    await post(url(`/add/${id}/20`));
    await post(url(`/subtract/${id}/2`));
    await post(url("/batch_init/5/7/1"));
    await post(url("/batch_init/5/4/1"));
    await step(url(""), "take", "o1:1.a", {
      items: [
        [id, 5],
        ["0", 1],
      ],
    });
    await step(url(""), "take", "o1:1.a", {
      items: [
        [id, 5],
        ["0", 1],
      ],
    });
    await step(url(""), "take", "o2:1.a", { items: [[id, 1]] });
    await step(url(""), "restore", "o2:1.a", { items: [[id, 1]] });
    await step(url(""), "take", "o3:1.a", { items: [[id, 1000]] });
    expect((await get(url(`/find/${id}`))).body.stock).toBe(13);

    const redisKeys = await state();
    expect(redisKeys).toHaveProperty(keys.totals);
    const totals = await totalsOf(url);
    expect({ held: totals.held, in_steps: totals.in_steps }).toEqual(await counted());
    expect(totals.held + totals.in_steps).toBe(totals.put_in);
    expect(totals.put_in).toBe(18 + 5 * 4);
  });
});

/** The totals a service reports on its internal overview. */
async function totalsOf(url: (path: string) => string) {
  const answer = await call("GET", url("/internal/overview"), undefined, internalAuthorization(TEST_INTERNAL_SECRET));
  expect(answer.status).toBe(200);
  return answer.body.totals as { held: number; in_steps: number; put_in: number };
}

test("rebuildTotals counts the totals anew from the entities, balanced", async () => {
  const redis = await startRedis({ logFor: { service: "payment" } });
  const service = await startService("payment", { redisPort: redis.port });
  try {
    const { body } = await post(`${service.url}/create_user`);
    await post(`${service.url}/add_funds/${body.user_id}/50`);
    await step(service.url, "charge", "o:1.a", { user_id: body.user_id, amount: 20 });
    await service.store.client.hset(keys.totals, "held", 999);
    expect(await rebuildTotals(service.store.client, "payment")).toEqual({ held: 30, in_steps: 20, put_in: 50 });
    expect(await readTotals(service.store.client)).toEqual({ held: 30, in_steps: 20, put_in: 50 });
  } finally {
    await service.stop();
    await redis.stop();
  }
});
