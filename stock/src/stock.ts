/**
 * Items and their stock: pure rules, and the state changes on Redis that apply them.
 * Stock never goes below zero, nor above MAX_INTEGER.
 */
import { AppError, badInput, found, refused, unknown } from "@checkout/common/errors";
import { MAX_INTEGER } from "@checkout/common/limits";
import { keys } from "@checkout/common/keyspace";
import type { Writes } from "@checkout/common/log";
import type { StepRetention } from "@checkout/common/retention";
import { participantSteps, type StepAnswer } from "@checkout/common/saga-step";
import type { Codec, Snapshot, Store } from "@checkout/common/store";

export type Item = { stock: number; price: number };
/** An order's demand: item id → units, each item once. */
export type Demand = ReadonlyArray<readonly [string, number]>;

export const itemCodec: Codec<Item> = {
  encode: (item) => ({ stock: String(item.stock), price: String(item.price) }),
  decode: (hash) => ({ stock: Number(hash.stock), price: Number(hash.price) }),
};

// ---- pure rules ----

export function added(item: Item | null, id: string, amount: number): Item | AppError {
  if (!item) return unknown("item", id);
  if (item.stock + amount > MAX_INTEGER) return badInput(`stock of item ${id} would exceed ${MAX_INTEGER}`);
  return { ...item, stock: item.stock + amount };
}

export function subtracted(item: Item | null, id: string, amount: number): Item | AppError {
  if (!item) return unknown("item", id);
  if (item.stock < amount)
    return refused("insufficient_stock", `item ${id} has ${item.stock} in stock, ${amount} requested`);
  return { ...item, stock: item.stock - amount };
}

/** Sums the quantities of repeated items, so that each item is checked and written once. */
export function mergeDemand(lines: ReadonlyArray<readonly [string, number]>): Demand {
  const total = new Map<string, number>();
  for (const [id, quantity] of lines) total.set(id, (total.get(id) ?? 0) + quantity);
  return [...total.entries()];
}

/** All of an order's items leave the stock together, or none does. */
export function takeAll(items: ReadonlyMap<string, Item | null>, demand: Demand): Writes | AppError {
  const writes: Writes = {};
  for (const [id, quantity] of demand) {
    const next = subtracted(items.get(id) ?? null, id, quantity);
    if (next instanceof AppError) return next;
    writes[keys.item(id)] = itemCodec.encode(next);
  }
  return writes;
}

/**
 * All of an order's items back into the stock together, or none: refused while one would pass
 * MAX_INTEGER (stock added since the take), and the saga sends it again until it fits.
 */
export function restoreAll(items: ReadonlyMap<string, Item | null>, demand: Demand): Writes | AppError {
  const writes: Writes = {};
  for (const [id, quantity] of demand) {
    const item = items.get(id);
    // An item taken by this operation exists: items are never deleted.
    if (!item) continue;
    const next = added(item, id, quantity);
    if (next instanceof AppError) return next;
    writes[keys.item(id)] = itemCodec.encode(next);
  }
  return writes;
}

const itemKeys = (demand: Demand) => demand.map(([id]) => keys.item(id));

function itemsOf(snapshot: Snapshot, demand: Demand): Map<string, Item | null> {
  return new Map(
    demand.map(([id]) => {
      const hash = snapshot.get(keys.item(id));
      return [id, hash ? itemCodec.decode(hash) : null] as const;
    }),
  );
}

// ---- state changes ----

export function createStock(store: Store, retention: StepRetention) {
  const steps = participantSteps(store, retention);
  return {
    async create(price: number): Promise<string> {
      const id = crypto.randomUUID();
      await store.change("stock.create", keys.item(id), itemCodec, () => ({ stock: 0, price }));
      return id;
    },

    find: async (id: string): Promise<Item> => itemCodec.decode(found("item", id, await store.read(keys.item(id)))),

    add: (id: string, amount: number) =>
      store.change("stock.add", keys.item(id), itemCodec, (item) => added(item, id, amount)),
    subtract: (id: string, amount: number) =>
      store.change("stock.subtract", keys.item(id), itemCodec, (item) => subtracted(item, id, amount)),

    async batchInit(count: number, stock: number, price: number): Promise<void> {
      const hash = itemCodec.encode({ stock, price });
      const entries = Array.from({ length: count }, (_, i) => [keys.item(String(i)), hash] as const);
      await store.writeMany("stock.batch_init", entries);
    },

    /** Saga step: takes every item of an order in one transaction, once per operation id. */
    take(opId: string, lines: ReadonlyArray<readonly [string, number]>): Promise<StepAnswer> {
      const demand = mergeDemand(lines);
      return steps.forward("stock.take", opId, itemKeys(demand), { items: JSON.stringify(demand) }, (snapshot) =>
        takeAll(itemsOf(snapshot, demand), demand),
      );
    },

    /** Compensation of `take`: puts back exactly what that operation took, at most once. */
    restore(opId: string, lines: ReadonlyArray<readonly [string, number]>): Promise<StepAnswer> {
      const demand = mergeDemand(lines);
      const items = JSON.stringify(demand);
      return steps.compensate("stock.restore", opId, itemKeys(demand), { items }, (applied, snapshot) => {
        if (applied.items !== items) throw badInput(`operation ${opId} took other items than the restore names`);
        return restoreAll(itemsOf(snapshot, demand), demand);
      });
    },
  };
}

export type StockService = ReturnType<typeof createStock>;
