import { stepRetention } from "@checkout/common/retention";
import { runService } from "@checkout/common/service";
import { stockApp } from "./app";
import { createStock } from "./stock";

await runService("stock", (config, store) => ({
  app: stockApp(createStock(store, stepRetention(config)), config.internalSecret),
}));
