/** Orders and saga records for the order service's pure rules' tests. */
import { newOrder, type Order } from "../../src/order-rules";
import type { SagaRecord } from "../../src/saga-record";

export const ME = "order-1";
export const OTHER = "order-2";
export const NOW = 1_000_000;
export const LEASE = 3_000;
export const NONCE = "n0nce";
export const OP = `o:1.${NONCE}`;

export const withSaga = (saga: Partial<SagaRecord>, order = newOrder("u1", [["a", 1]], 5)): Order => ({
  ...order,
  saga: { ...order.saga, ...saga },
});

export const running = (owner: string, leaseUntil: number) =>
  withSaga({ status: "running", attempt: 1, opId: OP, step: 0, owner, leaseUntil });
