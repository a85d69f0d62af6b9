/** Small helpers for talking to a service over real HTTP in a test. */
import { expect } from "bun:test";
import { STEPS_PATH } from "../../src/internal";

export type Answer = { status: number; body: any };

export async function call(method: "GET" | "POST", url: string, json?: unknown): Promise<Answer> {
  const response = await fetch(url, {
    method,
    body: json === undefined ? undefined : JSON.stringify(json),
    headers: json === undefined ? undefined : { "content-type": "application/json" },
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

/**
 * One saga step sent alone to a participant's step endpoint (common/src/internal.ts), answered as the
 * step's own status and body: `{ outcome }`, or the error body of its refusal or failure. A call the
 * endpoint rejects as a whole (bad input) answers with the call's status and body.
 */
export async function step(baseUrl: string, action: string, opId: string, fields: Record<string, unknown>): Promise<Answer> {
  const answer = await post(`${baseUrl}${STEPS_PATH}`, { steps: [{ action, op_id: opId, ...fields }] });
  if (answer.status !== 200) return answer;
  const { status, ...body } = answer.body.answers[0];
  return { status, body };
}
