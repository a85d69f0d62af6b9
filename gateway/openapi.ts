/**
 * The OpenAPI 3 document of the public API, generated from the routes themselves: their paths, the
 * zod schemas their validators check (hono-openapi reads them off `validParams`), and the answers
 * `documented` names (common/src/http.ts). Nothing in it is written by hand.
 *
 * The gateway serves it at /openapi.json (gateway/render.ts), with the reference page /docs beside it.
 * `gateway/public/openapi.json` is this function's output, committed (regenerate it with
 * `bun gateway/openapi.ts`); scripts/test/openapi.test.ts fails if the two drift apart, if a route is
 * missing from it, or if the gateway does not serve a path it names.
 */
import { Hono } from "hono";
import { generateSpecs } from "hono-openapi";
import { MIN_INTERNAL_SECRET_LENGTH, SERVICES, type ServiceName } from "../common/src/config";
import { addServiceRoutes } from "../common/src/service";
import { orderApp } from "../order/src/app";
import { paymentApp } from "../payment/src/app";
import { stockApp } from "../stock/src/app";
import { PUBLIC_PREFIX } from "./paths";

export const OPENAPI_FILE = new URL("./public/openapi.json", import.meta.url).pathname;

/**
 * Stands in for a service's state and peers: the document is made from the routes alone, and no
 * handler runs while it is made.
 */
const noState = new Proxy(
  {},
  {
    get(_, name) {
      throw new Error(`the OpenAPI document is generated without running a handler (asked for ${String(name)})`);
    },
  },
) as never;

/** A secret of the accepted length, for the internal routes' guard, which the document leaves out. */
const NO_SECRET = "-".repeat(MIN_INTERNAL_SECRET_LENGTH);

/** Each service's app, with its public routes as the gateway exposes them (internal ones included; see publicApi). */
export function serviceApps(): Record<ServiceName, Hono> {
  const apps: Record<ServiceName, Hono> = {
    order: orderApp(noState, NO_SECRET),
    stock: stockApp(noState, NO_SECRET),
    payment: paymentApp(noState, NO_SECRET),
  };
  for (const service of SERVICES) addServiceRoutes(apps[service], service, noState, NO_SECRET);
  return apps;
}

/** Internal routes answer only the order service, directly; the gateway never serves them. */
export const isInternal = (path: string) => path.split("/").includes("internal");

/** The whole public API as one app: each service under its public prefix. */
export function publicApi(): Hono {
  const root = new Hono();
  const apps = serviceApps();
  for (const service of SERVICES) root.route(`/${PUBLIC_PREFIX[service]}`, apps[service]);
  return root;
}

export async function openApiDocument(): Promise<object> {
  return generateSpecs(publicApi(), {
    documentation: {
      info: {
        title: "Checkout",
        version: "1",
        description:
          "A web shop's checkout: order, stock and payment services behind one gateway. Ids are strings; money and quantities are integers; every answer is JSON. A checkout answers 200 only once the order is durably paid, and 409 once its failure is durably decided.",
      },
      tags: SERVICES.map((service) => ({ name: PUBLIC_PREFIX[service] })),
    },
    exclude: [/\/internal(\/|$)/],
    defaultValidationErrorResponse: {
      description: "malformed input: not an integer, negative, too large, or a bad id",
      content: {
        "application/json": {
          schema: {
            type: "object",
            properties: { error: { type: "string" }, message: { type: "string" } },
            required: ["error", "message"],
          },
        },
      },
    },
  }).then((document) => withTags(document as { paths: Record<string, Record<string, { tags?: string[] }>> }));
}

/** Each operation tagged with its service's prefix, so the reference page groups them. */
function withTags<D extends { paths: Record<string, Record<string, { tags?: string[] }>> }>(document: D): D {
  for (const [path, operations] of Object.entries(document.paths)) {
    for (const operation of Object.values(operations)) operation.tags = [path.split("/")[1]!];
  }
  return document;
}

/** The committed file's text: the document, pretty-printed, with a final newline. */
export const openApiText = async () => `${JSON.stringify(await openApiDocument(), null, 2)}\n`;

if (import.meta.main) {
  await Bun.write(OPENAPI_FILE, await openApiText());
  console.log(`wrote ${OPENAPI_FILE}`);
}
