/**
 * A participant whose Redis is gone answers each step of a call with a 5xx — an outcome the saga
 * reads as unknown and sends again — never with a business refusal, and never with the whole call failed
 * for a step that could not be decided.
 */
import { expect, setDefaultTimeout, test } from "bun:test";
import { errorBody, post, stepCall } from "./support/http";
import { serviceOnItsOwnRedis } from "./support/service";

/** Real servers on a shared machine: generous, so that load elsewhere never fails a test by time alone. */
setDefaultTimeout(60_000);

const { url, stopRedis } = serviceOnItsOwnRedis("stock");

test("every step of a call to a stock service without its Redis is answered 503 redis_unavailable", async () => {
  const { body } = await post(url("/item/create/1"));
  await stopRedis();
  const steps = [
    { action: "take", op_id: "u1:1", items: [[body.item_id, 1]] },
    { action: "restore", op_id: "u2:1", items: [[body.item_id, 1]] },
  ];
  expect(await stepCall(url(""), { steps })).toEqual({
    status: 200,
    body: {
      answers: [
        { status: 503, ...errorBody("redis_unavailable") },
        { status: 503, ...errorBody("redis_unavailable") },
      ],
    },
  });
});
