import { configFor, connect, serve } from "@checkout/common/service";
import { build } from "./service";

const config = configFor("order");
const deps = connect(config);
await serve(config, deps, build(config, deps));
