import { describe, expect, test } from "bun:test";
import { MAX_INTEGER } from "@checkout/common/limits";
import { expectAppError } from "../../common/test/support/errors";
import { added, mergeDemand, restoreAll, subtracted, takeAll, type Item } from "../src/stock";

const item = (stock: number, price = 5): Item => ({ stock, price });

describe("subtracted", () => {
  test("takes the amount off the stock and keeps the price", () => {
    expect(subtracted(item(10), "a", 3)).toEqual(item(7));
  });

  test("may take the stock down to exactly zero", () => {
    expect(subtracted(item(3), "a", 3)).toEqual(item(0));
  });

  test("below zero is refused as insufficient_stock", () => {
    expectAppError(subtracted(item(2), "a", 3), 409, "insufficient_stock");
  });

  test("of an unknown item is unknown_item", () => {
    expectAppError(subtracted(null, "a", 1), 404, "unknown_item");
  });
});

describe("added", () => {
  test("adds the amount to the stock and keeps the price", () => {
    expect(added(item(10), "a", 5)).toEqual(item(15));
  });

  test("up to exactly MAX_INTEGER is allowed", () => {
    expect(added(item(MAX_INTEGER - 1), "a", 1)).toEqual(item(MAX_INTEGER));
  });

  test("beyond MAX_INTEGER is invalid input", () => {
    expectAppError(added(item(MAX_INTEGER), "a", 1), 400, "invalid_input");
    expectAppError(added(item(1), "a", MAX_INTEGER), 400, "invalid_input");
  });

  test("to an unknown item is unknown_item", () => {
    expectAppError(added(null, "a", 1), 404, "unknown_item");
  });
});

describe("takeAll", () => {
  const items = new Map<string, Item | null>([
    ["a", item(5)],
    ["b", item(1, 7)],
    ["c", null],
  ]);

  test("takes every item of the demand", () => {
    expect(
      takeAll(items, [
        ["a", 2],
        ["b", 1],
      ]),
    ).toEqual({
      "item:a": { stock: "3", price: "5" },
      "item:b": { stock: "0", price: "7" },
    });
  });

  test("takes nothing when one item is short", () => {
    expectAppError(
      takeAll(items, [
        ["a", 2],
        ["b", 2],
      ]),
      409,
      "insufficient_stock",
    );
  });

  test("takes nothing when one item is unknown", () => {
    expectAppError(
      takeAll(items, [
        ["a", 2],
        ["c", 1],
      ]),
      404,
      "unknown_item",
    );
  });

  test("takes nothing when an item is short even if listed first", () => {
    expectAppError(
      takeAll(items, [
        ["b", 2],
        ["a", 1],
      ]),
      409,
      "insufficient_stock",
    );
  });
});

describe("restoreAll", () => {
  test("puts back every item of the demand", () => {
    const items = new Map<string, Item | null>([
      ["a", item(3)],
      ["b", item(0, 7)],
    ]);
    expect(
      restoreAll(items, [
        ["a", 2],
        ["b", 1],
      ]),
    ).toEqual({
      "item:a": { stock: "5", price: "5" },
      "item:b": { stock: "1", price: "7" },
    });
  });

  test("puts back nothing while one item would pass 2^53-1", () => {
    const items = new Map<string, Item | null>([
      ["a", item(3)],
      ["b", item(Number.MAX_SAFE_INTEGER - 1)],
    ]);
    expect(
      restoreAll(items, [
        ["a", 2],
        ["b", 2],
      ]),
    ).toMatchObject({ status: 400, code: "invalid_input" });
  });
});

describe("mergeDemand", () => {
  test("sums the quantities of a repeated item, first appearance first", () => {
    expect(
      mergeDemand([
        ["a", 1],
        ["b", 2],
        ["a", 3],
        ["c", 1],
        ["b", 1],
      ]),
    ).toEqual([
      ["a", 4],
      ["b", 3],
      ["c", 1],
    ]);
  });

  test("leaves a demand without repeats as it is", () => {
    expect(
      mergeDemand([
        ["a", 1],
        ["b", 2],
      ]),
    ).toEqual([
      ["a", 1],
      ["b", 2],
    ]);
  });

  test("makes a repeated item count against its stock as a whole", () => {
    const items = new Map<string, Item | null>([["a", item(3)]]);
    expectAppError(
      takeAll(
        items,
        mergeDemand([
          ["a", 2],
          ["a", 2],
        ]),
      ),
      409,
      "insufficient_stock",
    );
  });
});
