/**
 * The one error type of the system. Its `code` is the same string in the JSON body, the log and the
 * tests; `status` is the HTTP status it becomes in the one error handler (http.ts).
 */
export type ErrorCode =
  | "invalid_input"
  | "not_found"
  | "unauthorized"
  | "method_not_allowed"
  | "unknown_item"
  | "unknown_user"
  | "unknown_order"
  | "insufficient_stock"
  | "insufficient_credit"
  | "checkout_in_progress"
  | "order_already_paid"
  | "operation_cancelled"
  | "operation_expired"
  | "order_too_large"
  | "peer_unavailable"
  | "redis_unavailable"
  | "log_unavailable"
  | "transaction_contention"
  | "internal_error";

export type ErrorStatus = 400 | 401 | 404 | 405 | 409 | 500 | 503;

export class AppError extends Error {
  constructor(
    readonly status: ErrorStatus,
    readonly code: ErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = "AppError";
  }

  toJSON(): { error: ErrorCode; message: string } {
    return { error: this.code, message: this.message };
  }
}

export const badInput = (message: string) => new AppError(400, "invalid_input", message);

/** Business refusals: the request was fine, the rules say no. Never a 5xx. */
export const refused = (code: ErrorCode, message: string) => new AppError(409, code, message);

export const notFound = (code: ErrorCode, message: string) => new AppError(404, code, message);

/** What the API names by id: an id that names none is refused 404 `unknown_<entity>`. */
export type Entity = "item" | "user" | "order";

export const unknown = (entity: Entity, id: string) =>
  notFound(`unknown_${entity}` as const, `${entity} ${id} does not exist`);

/** Find-or-404: the entity `id` names, read (null where there is none), or its 404. */
export function found<T>(entity: Entity, id: string, value: T | null | undefined): T {
  if (value === null || value === undefined) throw unknown(entity, id);
  return value;
}
