/** Assertions on the one error type: a refusal is an AppError with the expected status and code. */
import { expect } from "bun:test";
import { AppError, type ErrorCode, type ErrorStatus } from "@checkout/common/errors";

export function expectAppError(result: unknown, status: ErrorStatus, code: ErrorCode): void {
  expect(result).toBeInstanceOf(AppError);
  const error = result as AppError;
  expect({ status: error.status, code: error.code }).toEqual({ status, code });
}
