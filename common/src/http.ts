/**
 * What every service's HTTP layer shares: the app factory with the one error handler, and the
 * validators of path parameters.
 */
import { Hono } from "hono";
import { describeRoute, resolver, validator } from "hono-openapi";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { z } from "zod";
import { AppError, badInput } from "./errors";
import { MAX_INTEGER } from "./limits";
import type { ServiceName } from "./config";
import { requestMetrics } from "./metrics";

/** The HTTP methods of the API (HEAD is a GET without its body); the gateway refuses any other too. */
export const SERVED_METHODS = ["GET", "HEAD", "POST"] as const;
const served = new Set<string>(SERVED_METHODS);

export function createApp(service: ServiceName): Hono {
  const app = new Hono();
  app.use(requestMetrics);
  app.use(async (c, next) => {
    if (served.has(c.req.method)) return next();
    c.header("Allow", SERVED_METHODS.join(", "));
    throw new AppError(405, "method_not_allowed", `the API is served with ${SERVED_METHODS.join(", ")} only`);
  });
  app.onError((err, c) => {
    const appError = answerableError(err, service);
    return c.json(appError.toJSON(), appError.status as ContentfulStatusCode);
  });
  app.notFound((c) => c.json({ error: "not_found", message: `no route for ${c.req.method} ${c.req.path}` }, 404));
  return app;
}

/** A failure as the error to answer with; one that is the service's own (5xx) is also logged, by `where`. */
export function answerableError(err: unknown, where: string): AppError {
  const appError = toAppError(err);
  if (appError.status >= 500) console.error(`[${where}] ${appError.code}: ${err instanceof Error ? err.stack : err}`);
  return appError;
}

/** Redis connection failures are the service's own infrastructure failing: 503, never a business answer. */
export function toAppError(err: unknown): AppError {
  if (err instanceof AppError) return err;
  const message = err instanceof Error ? err.message : String(err);
  if (
    /ECONNREFUSED|ECONNRESET|Connection is closed|Stream isn't writeable|enableOfflineQueue|MaxRetriesPerRequest|LOADING|EPIPE/i.test(
      message,
    )
  ) {
    return new AppError(503, "redis_unavailable", "the service's database is unreachable; retry later", { cause: err });
  }
  return new AppError(500, "internal_error", "unexpected error", { cause: err });
}

/** A path segment that must be a non-negative integer no larger than MAX_INTEGER. */
export function nonNegativeInteger(name: string, min = 0) {
  const described = z.string().meta({ description: `an integer from ${min} to 2^53-1`, pattern: "^[0-9]+$" });
  return described.transform((raw, ctx) => {
    if (!/^-?\d+$/.test(raw)) {
      ctx.addIssue({ code: "custom", message: `${name} must be an integer, got "${raw}"` });
      return z.NEVER;
    }
    const value = Number(raw);
    // "-0" is written as a negative: refused like one, though it parses to zero.
    if (value < min || raw.startsWith("-")) {
      ctx.addIssue({ code: "custom", message: `${name} must be at least ${min}, got ${raw}` });
      return z.NEVER;
    }
    if (value > MAX_INTEGER) {
      ctx.addIssue({ code: "custom", message: `${name} must be at most ${MAX_INTEGER}, got ${raw}` });
      return z.NEVER;
    }
    return value;
  });
}

/**
 * The most entities one batch_init creates. It is one request that writes them all before answering
 * (tens of seconds for this many orders: docs/benchmarks.md#batch_init), and the gateway waits for
 * it accordingly (gateway/render.ts).
 */
export const BATCH_INIT_MAX = 1_000_000;

/** The `n` of a batch_init: how many entities it creates. */
export const batchInitCount = () =>
  nonNegativeInteger("n").pipe(z.number().max(BATCH_INIT_MAX, `n must be at most ${BATCH_INIT_MAX}`));

/**
 * Ids are opaque strings; this bounds them so a key can never be huge or contain separators. The one
 * definition: public paths (entityId) and internal steps (internal.ts) both check it.
 */
export const ID_PATTERN = "[A-Za-z0-9_-]{1,64}";
export const ENTITY_ID = new RegExp(`^${ID_PATTERN}$`);

export const entityId = (name: string) =>
  z.string().regex(ENTITY_ID, `${name} must be 1-64 letters, digits, '-' or '_'`);

/**
 * Validates path parameters; a failure is a 400 with the problems named. The validator is
 * hono-openapi's, so that the same schema also describes the route in the OpenAPI document
 * (gateway/openapi.ts).
 */
export function validParams<T extends z.ZodType>(schema: T) {
  return validator("param", schema, (result) => {
    if (!result.success) throw badInput(result.error.map((i) => i.message).join("; "));
  });
}

/** Validates a JSON body (internal endpoints); a failure is a 400. */
export function validJson<T extends z.ZodType>(schema: T) {
  return validator("json", schema, (result) => {
    if (!result.success) throw badInput(describeIssues(result.error));
  });
}

/** A validation failure as one message: each problem with the path it was found at. */
export function describeIssues(
  issues: ReadonlyArray<{ message: string; path?: ReadonlyArray<PropertyKey | { key: PropertyKey }> }>,
): string {
  return issues
    .map((i) => `${(i.path ?? []).map((p) => String(typeof p === "object" ? p.key : p)).join(".")}: ${i.message}`)
    .join("; ");
}

/** Every refusal and failure: a stable code (the same in logs and tests) and a sentence for people. */
export const errorBody = z.object({
  error: z.string().describe("a stable code: invalid_input, unknown_item, insufficient_stock, redis_unavailable, ..."),
  message: z.string(),
});

const jsonContent = (schema: z.ZodType) => ({ "application/json": { schema: resolver(schema) } });

/**
 * A public route's entry in the OpenAPI document (gateway/openapi.ts): what it does, and its 200
 * answer's shape; its parameters come from its validator. `refusals` names its 4xx other than a 400.
 */
export function documented(summary: string, answer: z.ZodType, refusals = "") {
  return describeRoute({
    summary,
    responses: {
      200: { description: "done", content: jsonContent(answer) },
      "4XX": {
        description: `refused, nothing changed: 400 malformed input${refusals ? `; ${refusals}` : ""}`,
        content: jsonContent(errorBody),
      },
      "5XX": {
        description: "the service's own infrastructure failing (its Redis unreachable); never a business outcome",
        content: jsonContent(errorBody),
      },
    },
  });
}

/** A message answer (batch_init). */
export const messageBody = z.object({ msg: z.string() });
