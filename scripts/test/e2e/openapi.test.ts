/**
 * The OpenAPI document (gateway/openapi.ts) against the routes and a real gateway: it is generated,
 * not written; every public route is in it; every path in it is served.
 */
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { SERVICES } from "../../../common/src/config";
import { isInternal, OPENAPI_FILE, openApiText, serviceApps } from "../../../gateway/openapi";
import { PUBLIC_PREFIX } from "../../../gateway/paths";
import { startLocalTestStack, type TestStack } from "../support/test-stack";

setDefaultTimeout(120_000);

type Document = {
  openapi: string;
  paths: Record<string, Record<string, { parameters?: Array<{ name: string; in: string }> }>>;
};

let shop: TestStack;
let document: Document;

beforeAll(async () => {
  shop = await startLocalTestStack();
  document = JSON.parse(await openApiText()) as Document;
});

afterAll(async () => {
  await shop?.stop();
});

/** Hono's `/find/:item_id` as OpenAPI's `/find/{item_id}`. */
const openApiPath = (honoPath: string) => honoPath.replace(/:(\w+)/g, "{$1}");

/** A value each parameter accepts: ids and integers alike ("1" is both). */
const sample = (path: string) => path.replace(/\{\w+\}/g, "1");

test("is an OpenAPI 3 document, committed exactly as generated (regenerate: bun gateway/openapi.ts)", async () => {
  expect(document.openapi).toMatch(/^3\./);
  expect(await Bun.file(OPENAPI_FILE).text()).toBe(await openApiText());
});

test("holds every public route of every service, with the method it is served with, and no internal one", () => {
  const apps = serviceApps();
  const routes = SERVICES.flatMap((service) =>
    apps[service].routes
      .filter((route) => route.method !== "ALL" && !isInternal(route.path))
      .map((route) => `${route.method} /${PUBLIC_PREFIX[service]}${openApiPath(route.path)}`),
  );
  const documented = Object.entries(document.paths).flatMap(([path, operations]) =>
    Object.keys(operations).map((method) => `${method.toUpperCase()} ${path}`),
  );
  expect(routes.length).toBeGreaterThan(15);
  expect([...new Set(documented)].sort()).toEqual([...new Set(routes)].sort());
  expect(documented.filter(isInternal)).toEqual([]);
});

test("describes every path parameter, from the schema its route validates", () => {
  for (const [path, operations] of Object.entries(document.paths)) {
    const named = [...path.matchAll(/\{(\w+)\}/g)].map((m) => m[1]!);
    for (const operation of Object.values(operations)) {
      expect({
        path,
        parameters: (operation.parameters ?? []).filter((p) => p.in === "path").map((p) => p.name),
      }).toEqual({ path, parameters: named });
    }
  }
});

test("names only paths the gateway serves: each is answered by its service's route, not by a not-found", async () => {
  for (const [path, operations] of Object.entries(document.paths)) {
    for (const method of Object.keys(operations)) {
      const response = await fetch(`${shop.gatewayUrl}${sample(path)}`, { method: method.toUpperCase() });
      const body = (await response.json()) as { error?: string; message?: string };
      // A not-found of an entity (unknown_item) is the route answering; a path nobody serves is `not_found`.
      expect({ method, path, status: response.status, error: body.error }).not.toMatchObject({ error: "not_found" });
      expect({ method, path, status: response.status }).not.toMatchObject({ status: 405 });
    }
  }
});

test("is served by the gateway at /openapi.json, and its reference page at /docs", async () => {
  const served = await fetch(`${shop.gatewayUrl}/openapi.json`);
  expect(served.headers.get("content-type")).toContain("application/json");
  expect(await served.text()).toBe(await Bun.file(OPENAPI_FILE).text());
  for (const path of ["/docs", "/docs/"]) {
    const page = await fetch(`${shop.gatewayUrl}${path}`, { redirect: "manual" });
    expect({ path, status: page.status, type: page.headers.get("content-type") }).toEqual({
      path,
      status: 200,
      type: expect.stringContaining("text/html"),
    });
    expect(await page.text()).not.toMatch(/https?:\/\//);
  }
});
