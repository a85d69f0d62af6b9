/**
 * Where the gateway serves what: each service's public prefix, the paths whose retry policy differs
 * from a write's, and the gateway's own pages. The renderer (render.ts), the local stack and the
 * OpenAPI document (openapi.ts) read them.
 */
import type { ServiceName } from "../common/src/config";

/** The public path prefix of each service (the order service is the one whose prefix is plural). */
export const PUBLIC_PREFIX: Readonly<Record<ServiceName, string>> = {
  order: "orders",
  stock: "stock",
  payment: "payment",
};

/**
 * Paths (after the prefix) answered by GET, i.e. reads that may safely be asked of a second replica.
 * Everything else under a prefix is a POST that changes state.
 */
export const READ_PATHS: Readonly<Record<ServiceName, readonly string[]>> = {
  order: ["find/"],
  stock: ["find/"],
  payment: ["find_user/"],
};

/** The path (after the prefix) where the order service takes checkouts. */
export const CHECKOUT_PATH = "checkout/";
/** The path (after the prefix) of every service's batch_init. */
export const BATCH_INIT_PATH = "batch_init/";

/**
 * The gateway's own pages, served from gateway/public, read-only and the same for everyone: the
 * OpenAPI document (gateway/openapi.ts), its reference page, and the live dashboard (which reads the
 * aggregate figures of GET /orders/stats). No service's internal endpoint or metrics port is among them.
 */
export const PAGES = { openApi: "/openapi.json", docs: "/docs", dashboard: "/dashboard" } as const;
