/** The payment service, wired: its routes on its store (common/src/service.ts has the shape). */
import type { ServiceConfig } from "@checkout/common/config";
import { stepRetention } from "@checkout/common/retention";
import { addServiceRoutes, type Service, type ServiceDeps } from "@checkout/common/service";
import { paymentApp } from "./app";
import { createPayment } from "./payment";

export function build(config: ServiceConfig, { store, retention = stepRetention(config) }: ServiceDeps): Service {
  const app = paymentApp(createPayment(store, retention), config.internalSecret);
  addServiceRoutes(app, "payment", store, config.internalSecret);
  return { app };
}
