/**
 * The invariants a checkout system must keep, as pure functions over state read back through the
 * public API. Nothing here does I/O: the shapes fetch a StateSnapshot and hand it in, so that each
 * rule can be tested on hand-made state, including state that breaks it.
 */
import { classify, NOT_SENT } from "./load";

export type OrderState = {
  orderId: string;
  paid: boolean;
  /** [item_id, quantity] pairs, as GET /orders/find returns them (an item may appear twice). */
  items: ReadonlyArray<readonly [string, number]>;
  userId: string;
  totalCost: number;
};

export type StateSnapshot = {
  /** Stock of every tracked item before the run, and now. */
  initialStock: ReadonlyMap<string, number>;
  currentStock: ReadonlyMap<string, number>;
  /** Credit of every tracked user before the run, and now. */
  initialCredit: ReadonlyMap<string, number>;
  currentCredit: ReadonlyMap<string, number>;
  /** Every order the run may have paid: all orders it sent a checkout for (and any other it knows of). */
  orders: readonly OrderState[];
  /** The HTTP status each checkout got (or NETWORK_ERROR), by order id; orders never sent are absent. */
  answers: ReadonlyMap<string, number>;
};

export type InvariantReport = { ok: boolean; details: string[] };

/** Violations of one kind listed one by one before the rest is summarized, to keep reports readable. */
export const MAX_LISTED_PER_RULE = 10;

/** Collects the violations of one rule, listing the first few and counting the rest. */
class Rule {
  private readonly listed: string[] = [];
  private violations = 0;
  constructor(readonly name: string) {}

  fail(detail: string): void {
    this.violations += 1;
    if (this.listed.length < MAX_LISTED_PER_RULE) this.listed.push(`${this.name}: ${detail}`);
  }

  report(into: string[]): void {
    into.push(...this.listed);
    if (this.violations > this.listed.length) {
      into.push(`${this.name}: … and ${this.violations - this.listed.length} more`);
    }
  }
}

/** Units of each item in paid orders, quantities of the same item summed. */
export function paidUnitsByItem(orders: readonly OrderState[]): Map<string, number> {
  const units = new Map<string, number>();
  for (const order of orders) {
    if (!order.paid) continue;
    for (const [itemId, quantity] of order.items) units.set(itemId, (units.get(itemId) ?? 0) + quantity);
  }
  return units;
}

/** Money charged for paid orders, by user. */
export function paidCostByUser(orders: readonly OrderState[]): Map<string, number> {
  const cost = new Map<string, number>();
  for (const order of orders) {
    if (order.paid) cost.set(order.userId, (cost.get(order.userId) ?? 0) + order.totalCost);
  }
  return cost;
}

function sum(values: Iterable<number>): number {
  let total = 0;
  for (const v of values) total += v;
  return total;
}

/**
 * Checks, for the tracked items, users and orders:
 * - stock: initial stock = current stock + units in paid orders, per item;
 * - credit: initial credit = current credit + total_cost of paid orders, in total and per user;
 * - answers: a 2xx checkout's order is paid, a 4xx checkout's order is not;
 * - nothing negative, and nothing paid for that the snapshot does not track.
 */
export function checkInvariants(s: StateSnapshot): InvariantReport {
  const stock = new Rule("stock");
  const credit = new Rule("credit");
  const answers = new Rule("answer");
  const tracking = new Rule("tracking");

  const units = paidUnitsByItem(s.orders);
  for (const [itemId, initial] of s.initialStock) {
    const current = s.currentStock.get(itemId);
    if (current === undefined) {
      stock.fail(`item ${itemId} could not be read back`);
      continue;
    }
    const paid = units.get(itemId) ?? 0;
    if (current < 0) stock.fail(`item ${itemId} has negative stock ${current}`);
    if (initial !== current + paid) {
      stock.fail(
        `item ${itemId}: initial ${initial} ≠ current ${current} + ${paid} units in paid orders ` +
          `(${initial - current - paid > 0 ? "lost" : "created"} ${Math.abs(initial - current - paid)})`,
      );
    }
  }
  for (const itemId of units.keys()) {
    if (!s.initialStock.has(itemId)) tracking.fail(`a paid order holds item ${itemId}, which the run does not track`);
  }

  const charged = paidCostByUser(s.orders);
  for (const [userId, initial] of s.initialCredit) {
    const current = s.currentCredit.get(userId);
    if (current === undefined) {
      credit.fail(`user ${userId} could not be read back`);
      continue;
    }
    const paid = charged.get(userId) ?? 0;
    if (current < 0) credit.fail(`user ${userId} has negative credit ${current}`);
    if (initial !== current + paid) {
      credit.fail(`user ${userId}: initial ${initial} ≠ current ${current} + ${paid} charged for paid orders`);
    }
  }
  for (const userId of charged.keys()) {
    if (!s.initialCredit.has(userId))
      tracking.fail(`a paid order belongs to user ${userId}, whom the run does not track`);
  }
  const initialTotal = sum(s.initialCredit.values());
  const currentTotal = sum(s.currentCredit.values());
  const chargedTotal = sum(charged.values());
  if (initialTotal !== currentTotal + chargedTotal) {
    credit.fail(`total: initial ${initialTotal} ≠ current ${currentTotal} + ${chargedTotal} charged for paid orders`);
  }

  const orderById = new Map(s.orders.map((o) => [o.orderId, o]));
  for (const [orderId, status] of s.answers) {
    if (status === NOT_SENT) continue;
    const order = orderById.get(orderId);
    const kind = classify(status);
    if (kind !== "2xx" && kind !== "4xx") continue;
    if (!order) {
      answers.fail(`order ${orderId} answered ${status} but could not be read back`);
    } else if (kind === "2xx" && !order.paid) {
      answers.fail(`order ${orderId} answered ${status} but is not paid`);
    } else if (kind === "4xx" && order.paid) {
      answers.fail(`order ${orderId} answered ${status} but is paid`);
    }
  }

  const details: string[] = [];
  for (const rule of [stock, credit, answers, tracking]) rule.report(details);
  return { ok: details.length === 0, details };
}

/** Adds the failures of shape-specific expectations (e.g. "exactly 100 succeeded") to a report. */
export function withExpectations(report: InvariantReport, failures: readonly string[]): InvariantReport {
  const details = [...report.details, ...failures.map((f) => `expectation: ${f}`)];
  return { ok: details.length === 0, details };
}
