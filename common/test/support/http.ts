/** Small helpers for talking to a service over real HTTP in a test. */
import { expect } from "bun:test";
import { internalAuthorization, STEPS_PATH } from "../../src/internal";

/** The internal secret of every service a test starts in-process (support/service.ts). */
export const TEST_INTERNAL_SECRET = "test-internal-secret-0123456789abcdef";

export type Answer = { status: number; body: any };

export async function call(
  method: "GET" | "POST",
  url: string,
  json?: unknown,
  headers: Record<string, string> = {},
): Promise<Answer> {
  const response = await fetch(url, {
    method,
    body: json === undefined ? undefined : JSON.stringify(json),
    headers: json === undefined ? headers : { "content-type": "application/json", ...headers },
    // A redirect is an answer the test must see: API clients do not all follow one.
    redirect: "manual",
  });
  const text = await response.text();
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    body = text;
  }
  return { status: response.status, body };
}

export const post = (url: string, json?: unknown) => call("POST", url, json);
export const get = (url: string) => call("GET", url);

/** The shape every error answer has: a named code and a human message. */
export const errorBody = (error: string) => ({ error, message: expect.any(String) });

/** A call of the step endpoint as the order service makes it, with the internal secret. */
export const stepCall = (baseUrl: string, body: unknown) =>
  call("POST", `${baseUrl}${STEPS_PATH}`, body, internalAuthorization(TEST_INTERNAL_SECRET));

/**
 * One saga step sent alone to a participant's step endpoint (common/src/internal.ts), answered as the
 * step's own status and body: `{ outcome }`, or the error body of its refusal or failure. A call the
 * endpoint rejects as a whole (bad input) answers with the call's status and body.
 */
export async function step(
  baseUrl: string,
  action: string,
  opId: string,
  fields: Record<string, unknown>,
): Promise<Answer> {
  const answer = await stepCall(baseUrl, { steps: [{ action, op_id: opId, ...fields }] });
  if (answer.status !== 200) return answer;
  const { status, ...body } = answer.body.answers[0];
  return { status, body };
}
