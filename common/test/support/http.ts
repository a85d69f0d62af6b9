/** Small helpers for talking to a service over real HTTP in a test. */
import { expect } from "bun:test";

export type Answer = { status: number; body: any };

export async function call(method: "GET" | "POST", url: string, json?: unknown): Promise<Answer> {
  const response = await fetch(url, {
    method,
    body: json === undefined ? undefined : JSON.stringify(json),
    headers: json === undefined ? undefined : { "content-type": "application/json" },
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
