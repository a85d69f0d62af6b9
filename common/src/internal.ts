/**
 * The internal saga-step endpoint's shared shapes. It lives under /internal/, which the gateway never
 * forwards: only the order service calls it, directly, presenting the deployment's internal secret.
 *
 * One call carries a batch of steps of different sagas (`POST /internal/steps`), and each step gets
 * its own answer: a call costs an HTTP round trip on both sides however many steps ride on it, and
 * the steps of one call commit together in the participant's next Redis batch (store.ts). A step
 * stays what it would be alone: idempotent per operation id, answered only once durable.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import type { Context, MiddlewareHandler } from "hono";
import { z } from "zod";
import { answerableError, describeIssues, ENTITY_ID, ID_PATTERN } from "./http";
import { MAX_INTEGER } from "./limits";
import { AppError, badInput, type ErrorCode } from "./errors";
import type { StepAnswer, StepState } from "./saga-step";

export const STEPS_PATH = "/internal/steps";

/** The most steps one call carries; the order service sends the rest in the next call. */
export const MAX_STEPS_PER_CALL = 256;

/**
 * The most lines one stock step carries. An order holds no more (order/src/order-rules.ts), so no take
 * or restore of an order is refused for its size: a compensation is sent until it is applied.
 */
export const MAX_ITEMS_PER_STEP = 1_000;

/** The header that carries the internal secret on a step call: `Authorization: Bearer <secret>`. */
export const internalAuthorization = (secret: string) => ({ authorization: `Bearer ${secret}` });

const digest = (text: string) => createHash("sha256").update(text).digest();

/**
 * Internal endpoints answer only the order service: a call without the deployment's internal secret
 * (config.ts, INTERNAL_SECRET) is refused 401 before it is read, however its path was spelled and
 * whichever network it came from. The gateway never passes a client's headers on, so no request
 * through it can carry the secret. Digests of equal length are compared in constant time, so that
 * the time of a refusal tells nothing of the secret.
 */
export function internalOnly(secret: string): MiddlewareHandler {
  const expected = digest(internalAuthorization(secret).authorization);
  return async (c, next) => {
    const presented = c.req.header("authorization");
    if (presented === undefined || !timingSafeEqual(digest(presented), expected)) {
      throw new AppError(401, "unauthorized", "internal endpoints answer only the order service");
    }
    await next();
  };
}

/**
 * An operation id: `<order id>:<attempt>.<nonce>@<start>` (see the order service's SagaRecord.opId
 * and retention.ts); ids without a start, from before step records expired, are kept for good.
 */
const opId = z
  .string()
  .regex(
    new RegExp(`^${ID_PATTERN}:\\d{1,9}(\\.[A-Za-z0-9-]{1,16})?(@\\d{1,15})?$`),
    "op_id must be <order id>:<attempt>[.<nonce>][@<start, ms since the epoch>]",
  );

const id = z.string().regex(ENTITY_ID);
const count = z.number().int().min(1).max(MAX_INTEGER);
const amount = z.number().int().min(0).max(MAX_INTEGER);

/**
 * A call's body: 1 to MAX_STEPS_PER_CALL steps. Each step is validated on its own (answerSteps), so
 * that a bad step is refused alone and never takes the other sagas' steps of its call down with it.
 */
export const stepsBody = z.object({ steps: z.array(z.unknown()).min(1).max(MAX_STEPS_PER_CALL) });

/** A step: an action of the participant, the attempt's operation id, and the action's fields. */
const stepOf = <A extends readonly [string, ...string[]], F extends z.ZodRawShape>(actions: A, fields: F) =>
  z.object({ action: z.enum(actions), op_id: opId, ...fields });

export const stockStep = stepOf(["take", "restore"], {
  items: z
    .array(z.tuple([id, count]))
    .min(1)
    .max(MAX_ITEMS_PER_STEP),
});
export const paymentStep = stepOf(["charge", "refund"], { user_id: id, amount });

/**
 * One step's answer inside a call's 200: the status it would have had alone — 200 with its outcome,
 * its refusal's 4xx, or the 5xx of a failure — so the saga reads 4xx as definite, anything else as unknown.
 */
export type StepReply = { status: number; outcome?: StepState; error?: ErrorCode; message?: string };

function replyOf(answer: StepAnswer): StepReply {
  return answer.ok
    ? { status: 200, outcome: answer.outcome }
    : { status: answer.error.status, ...answer.error.toJSON() };
}

const failureReply = (err: unknown): StepReply => {
  const error = answerableError(err, "steps");
  return { status: error.status, ...error.toJSON() };
};

/**
 * Validates and runs every step of a call at once, in the order sent (so they join one Redis batch, in
 * that order), and answers each on its own: a step that is not valid is answered 400 and changes nothing.
 */
export async function answerSteps<S>(
  c: Context,
  steps: readonly unknown[],
  schema: z.ZodType<S>,
  run: (step: S) => Promise<StepAnswer>,
) {
  const answers = await Promise.all(
    steps.map((raw) => {
      const step = schema.safeParse(raw);
      if (!step.success) return failureReply(badInput(describeIssues(step.error.issues)));
      return run(step.data).then(replyOf, failureReply);
    }),
  );
  return c.json({ answers });
}
