/** The stock service, wired: its routes on its store (common/src/service.ts has the shape). */
import type { ServiceConfig } from "@checkout/common/config";
import { stepRetention } from "@checkout/common/retention";
import { addServiceRoutes, type Service, type ServiceDeps } from "@checkout/common/service";
import { stockApp } from "./app";
import { createStock } from "./stock";

export function build(config: ServiceConfig, { store, retention = stepRetention(config) }: ServiceDeps): Service {
  const app = stockApp(createStock(store, retention), config.internalSecret);
  addServiceRoutes(app, "stock", store, config.internalSecret);
  return { app };
}
