/** The order's own pure rules: adding an item, and the stored form. */
import { describe, expect, test } from "bun:test";
import { expectAppError } from "../../common/test/support/errors";
import { MAX_INTEGER } from "@checkout/common/limits";
import { MAX_ITEMS_PER_STEP } from "@checkout/common/internal";
import { newOrder, orderCodec, withItem, type Order } from "../src/order-rules";
import { ME, NOW, OTHER, running, withSaga } from "./support/order-fixtures";

describe("withItem", () => {
  test("appends the item and adds quantity × price to the total", () => {
    const order = withItem(newOrder("u1", [["a", 1]], 5), "o", "b", 3, 7);
    expect(order).toEqual({
      ...newOrder("u1"),
      items: [
        ["a", 1],
        ["b", 3],
      ],
      totalCost: 26,
    });
  });

  test("keeps a repeated item as a separate line", () => {
    const order = withItem(newOrder("u1", [["a", 1]], 5), "o", "a", 2, 5) as Order;
    expect(order.items).toEqual([
      ["a", 1],
      ["a", 2],
    ]);
    expect(order.totalCost).toBe(15);
  });

  test("beyond the lines one stock step carries is refused as order_too_large", () => {
    const full = newOrder(
      "u1",
      Array.from({ length: MAX_ITEMS_PER_STEP }, (_, i) => [`item-${i}`, 1] as [string, number]),
      MAX_ITEMS_PER_STEP,
    );
    expectAppError(withItem(full, "o", "a", 1, 1), 409, "order_too_large");
    expect((withItem({ ...full, items: full.items.slice(1) }, "o", "a", 1, 1) as Order).items).toHaveLength(
      MAX_ITEMS_PER_STEP,
    );
  });

  test("to an unknown order is unknown_order", () => {
    expectAppError(withItem(null, "o", "a", 1, 1), 404, "unknown_order");
  });

  test("to a paid order is refused as order_already_paid", () => {
    expectAppError(withItem({ ...newOrder("u1"), paid: true }, "o", "a", 1, 1), 409, "order_already_paid");
  });

  test("to an order whose checkout is running is refused as checkout_in_progress", () => {
    expectAppError(withItem(running(OTHER, NOW + 1), "o", "a", 1, 1), 409, "checkout_in_progress");
  });

  test("to an order whose checkout is compensating is refused as checkout_in_progress", () => {
    expectAppError(
      withItem(withSaga({ status: "compensating", attempt: 1 }), "o", "a", 1, 1),
      409,
      "checkout_in_progress",
    );
  });

  test("to an order whose checkout failed is allowed", () => {
    const order = withItem(withSaga({ status: "failed", attempt: 1 }), "o", "b", 1, 2) as Order;
    expect(order.totalCost).toBe(7);
  });

  test("that would take the total beyond 2^53-1 is invalid input", () => {
    expectAppError(withItem(newOrder("u1", [], MAX_INTEGER - 1), "o", "a", 1, 2), 400, "invalid_input");
    expectAppError(withItem(newOrder("u1"), "o", "a", MAX_INTEGER, 2), 400, "invalid_input");
  });

  test("that takes the total to exactly 2^53-1 is allowed", () => {
    expect((withItem(newOrder("u1", [], MAX_INTEGER - 2), "o", "a", 1, 2) as Order).totalCost).toBe(MAX_INTEGER);
  });
});

describe("orderCodec", () => {
  test("decodes what it encodes", () => {
    const order = withSaga({
      status: "compensating",
      attempt: 2,
      step: 1,
      owner: ME,
      leaseUntil: NOW,
      error: { status: 409, code: "insufficient_credit", message: "no" },
    });
    expect(orderCodec.decode(orderCodec.encode(order))).toEqual(order);
  });
});
