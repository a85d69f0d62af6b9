import { stepRetention } from "@checkout/common/retention";
import { runService } from "@checkout/common/service";
import { paymentApp } from "./app";
import { createPayment } from "./payment";

await runService("payment", (config, store) => ({
  app: paymentApp(createPayment(store, stepRetention(config)), config.internalSecret),
}));
