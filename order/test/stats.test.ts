/** The dashboard's latency figures and the sagas-in-flight listing: pure shaping of what was read. */
import { describe, expect, test } from "bun:test";
import { newOrder, type Order } from "../src/order-rules";
import { sagasInFlight } from "../src/sagas-in-flight";
import { bucketDelta, quantileOf } from "../src/stats";

const INF = Number.POSITIVE_INFINITY;

describe("quantileOf", () => {
  test("finds the bucket holding the rank and interpolates inside it", () => {
    // 10 at or below 0.01 s, 90 more at or below 0.1 s.
    const buckets = new Map([
      [0.01, 10],
      [0.1, 100],
      [INF, 100],
    ]);
    expect(quantileOf(buckets, 0.05)).toBeCloseTo(0.005);
    expect(quantileOf(buckets, 0.5)).toBeCloseTo(0.01 + (0.09 * 40) / 90);
    expect(quantileOf(buckets, 0.99)).toBeCloseTo(0.01 + (0.09 * 89) / 90);
  });

  test("is null with no observations, and the highest bound for ranks past it", () => {
    expect(
      quantileOf(
        new Map([
          [0.01, 0],
          [INF, 0],
        ]),
        0.5,
      ),
    ).toBeNull();
    expect(
      quantileOf(
        new Map([
          [0.01, 1],
          [INF, 2],
        ]),
        0.99,
      ),
    ).toBe(0.01);
  });

  test("over an interval: the difference of two cumulative readings", () => {
    const earlier = new Map([
      [0.01, 5],
      [0.1, 5],
      [INF, 5],
    ]);
    const later = new Map([
      [0.01, 5],
      [0.1, 15],
      [INF, 15],
    ]);
    expect(bucketDelta(later, earlier)).toEqual(
      new Map([
        [0.01, 0],
        [0.1, 10],
        [INF, 10],
      ]),
    );
    expect(quantileOf(bucketDelta(later, earlier), 0.5)).toBeCloseTo(0.055);
  });
});

describe("sagasInFlight", () => {
  const NOW = 1_000_000;
  const withSaga = (saga: Partial<Order["saga"]>): Order => ({
    ...newOrder("u"),
    saga: { ...newOrder("u").saga, ...saga },
  });

  test("lists the unfinished sagas, oldest first, with the counts by state; finished ones are left out", () => {
    const orders: Array<[string, Order]> = [
      [
        "a",
        withSaga({
          status: "running",
          attempt: 1,
          step: 0,
          owner: "order-1",
          leaseUntil: NOW + 2_000,
          opId: `a:1.n0nce@${NOW - 100}`,
        }),
      ],
      [
        "b",
        withSaga({
          status: "compensating",
          attempt: 2,
          step: 1,
          owner: "order-2",
          leaseUntil: NOW - 5,
          opId: `b:2.n0nce@${NOW - 900}`,
          error: { status: 409, code: "insufficient_credit", message: "no" },
        }),
      ],
      ["c", withSaga({ status: "done", attempt: 1 })],
    ];
    expect(sagasInFlight(orders, NOW, (id) => (id === "a" ? "charge_credit: payment unreachable" : undefined))).toEqual(
      {
        counts: { running: 1, compensating: 1 },
        total: 2,
        listed: 2,
        sagas: [
          {
            order_id: "b",
            attempt: 2,
            state: "compensating",
            step: 1,
            lease_holder: "order-2",
            lease_left_ms: 0,
            age_ms: 900,
            last_error: "insufficient_credit: no",
          },
          {
            order_id: "a",
            attempt: 1,
            state: "running",
            step: 0,
            lease_holder: "order-1",
            lease_left_ms: 2_000,
            age_ms: 100,
            last_error: "charge_credit: payment unreachable",
          },
        ],
      },
    );
  });
});
