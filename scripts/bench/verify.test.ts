import { describe, expect, test } from "bun:test";
import { NETWORK_ERROR } from "./load";
import {
  checkInvariants,
  MAX_LISTED_PER_RULE,
  paidUnitsByItem,
  withExpectations,
  type OrderState,
  type StateSnapshot,
} from "./verify";

const order = (orderId: string, userId: string, items: [string, number][], paid: boolean, price = 1): OrderState => ({
  orderId,
  userId,
  items,
  paid,
  totalCost: items.reduce((sum, [, q]) => sum + q * price, 0),
});

/** Two items with stock 10, two users with credit 10; o1 (paid) took 2 of A and 1 of B from u1; o2 was refused. */
function consistentState(): StateSnapshot {
  return {
    initialStock: new Map([
      ["A", 10],
      ["B", 10],
    ]),
    currentStock: new Map([
      ["A", 8],
      ["B", 9],
    ]),
    initialCredit: new Map([
      ["u1", 10],
      ["u2", 10],
    ]),
    currentCredit: new Map([
      ["u1", 7],
      ["u2", 10],
    ]),
    orders: [
      order(
        "o1",
        "u1",
        [
          ["A", 1],
          ["B", 1],
          ["A", 1],
        ],
        true,
      ),
      order("o2", "u2", [["A", 20]], false),
    ],
    answers: new Map([
      ["o1", 200],
      ["o2", 409],
    ]),
  };
}

describe("checkInvariants", () => {
  test("a consistent state passes", () => {
    expect(checkInvariants(consistentState())).toEqual({ ok: true, details: [] });
  });

  test("units of the same item are summed across the lines of an order", () => {
    expect(paidUnitsByItem(consistentState().orders).get("A")).toBe(2);
  });

  test("stock that vanished without a paid order is reported with the item and the amount", () => {
    const s = consistentState();
    s.currentStock = new Map([
      ["A", 7],
      ["B", 9],
    ]);
    const report = checkInvariants(s);
    expect(report.ok).toBe(false);
    expect(report.details).toEqual(["stock: item A: initial 10 ≠ current 7 + 2 units in paid orders (lost 1)"]);
  });

  test("a refund given twice shows as credit created, per user and in total", () => {
    const s = consistentState();
    s.currentCredit = new Map([
      ["u1", 7],
      ["u2", 11],
    ]);
    const report = checkInvariants(s);
    expect(report.ok).toBe(false);
    expect(report.details).toContain("credit: user u2: initial 10 ≠ current 11 + 0 charged for paid orders");
    expect(report.details).toContain("credit: total: initial 20 ≠ current 18 + 3 charged for paid orders");
  });

  test("a 2xx for an order that is not paid is a violation", () => {
    const s = consistentState();
    s.answers = new Map([
      ["o1", 200],
      ["o2", 200],
    ]);
    expect(checkInvariants(s).details).toEqual(["answer: order o2 answered 200 but is not paid"]);
  });

  test("a 4xx for an order that is paid is a violation", () => {
    const s = consistentState();
    s.answers = new Map([
      ["o1", 409],
      ["o2", 409],
    ]);
    expect(checkInvariants(s).details).toEqual(["answer: order o1 answered 409 but is paid"]);
  });

  test("a checkout without a business answer may have gone either way", () => {
    const s = consistentState();
    s.answers = new Map([
      ["o1", NETWORK_ERROR],
      ["o2", 503],
    ]);
    expect(checkInvariants(s).ok).toBe(true);
  });

  test("negative stock is reported even when the arithmetic balances", () => {
    const s: StateSnapshot = {
      ...consistentState(),
      initialStock: new Map([["A", 1]]),
      currentStock: new Map([["A", -1]]),
      orders: [order("o1", "u1", [["A", 2]], true)],
      initialCredit: new Map([["u1", 10]]),
      currentCredit: new Map([["u1", 8]]),
      answers: new Map([["o1", 200]]),
    };
    expect(checkInvariants(s).details).toEqual(["stock: item A has negative stock -1"]);
  });

  test("entities that cannot be read back and paid orders outside the tracked set are reported", () => {
    const s = consistentState();
    s.currentStock = new Map([["A", 8]]);
    s.orders = [...s.orders, order("o3", "u9", [["Z", 1]], true)];
    const details = checkInvariants(s).details;
    expect(details).toContain("stock: item B could not be read back");
    expect(details).toContain("tracking: a paid order holds item Z, which the run does not track");
    expect(details).toContain("tracking: a paid order belongs to user u9, whom the run does not track");
  });

  test("many violations of one rule are listed up to a limit and then counted", () => {
    const n = MAX_LISTED_PER_RULE + 5;
    const ids = Array.from({ length: n }, (_, i) => `i${i}`);
    const s: StateSnapshot = {
      initialStock: new Map(ids.map((id) => [id, 5])),
      currentStock: new Map(ids.map((id) => [id, 4])),
      initialCredit: new Map(),
      currentCredit: new Map(),
      orders: [],
      answers: new Map(),
    };
    const details = checkInvariants(s).details;
    expect(details).toHaveLength(MAX_LISTED_PER_RULE + 1);
    expect(details.at(-1)).toBe("stock: … and 5 more");
  });
});

describe("withExpectations", () => {
  test("a failed expectation fails a report whose invariants held", () => {
    expect(withExpectations({ ok: true, details: [] }, ["99 checkouts succeeded, expected exactly 100"])).toEqual({
      ok: false,
      details: ["expectation: 99 checkouts succeeded, expected exactly 100"],
    });
  });

  test("no expectations leave the report as it was", () => {
    expect(withExpectations({ ok: true, details: [] }, [])).toEqual({ ok: true, details: [] });
  });
});
