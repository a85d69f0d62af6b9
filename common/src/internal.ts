/**
 * The internal saga-step endpoints' shared shapes. They live under /internal/, which the gateway
 * never forwards: only the order service calls them, directly.
 */
import type { Context, MiddlewareHandler } from "hono";
import { z } from "zod";
import { MAX_INTEGER } from "./http";
import { notFound } from "./errors";
import type { StepAnswer } from "./saga-step";

/** Set by the gateway on every request it forwards (gateway/render.ts). */
export const GATEWAY_HEADER = "x-via-gateway";

/**
 * Internal endpoints answer only callers inside the system: a request that came through the gateway
 * is told the path does not exist, however its path was spelled to slip past the gateway's own rule.
 */
export const internalOnly: MiddlewareHandler = async (c, next) => {
  if (c.req.header(GATEWAY_HEADER) !== undefined) throw notFound("not_found", "internal endpoints are not served through the gateway");
  await next();
};

/** An operation id: `<order id>:<attempt>.<nonce>` (see the order service's SagaRecord.opId). */
export const opIdParam = z.object({
  op_id: z.string().regex(/^[A-Za-z0-9_-]{1,64}:\d{1,9}(\.[A-Za-z0-9-]{1,16})?$/, "op_id must be <order id>:<attempt>[.<nonce>]"),
});

const id = z.string().regex(/^[A-Za-z0-9_-]{1,64}$/);
const count = z.number().int().min(1).max(MAX_INTEGER);
const amount = z.number().int().min(0).max(MAX_INTEGER);

export const demandBody = z.object({ items: z.array(z.tuple([id, count])).min(1).max(1_000) });
export const chargeBody = z.object({ user_id: id, amount });

/** 200 with the outcome, or the refusal's own 4xx: the saga reads 4xx as definite, anything else as unknown. */
export function stepResponse(c: Context, answer: StepAnswer) {
  if (answer.ok) return c.json({ outcome: answer.outcome });
  return c.json(answer.error.toJSON(), answer.error.status as 404 | 409);
}
