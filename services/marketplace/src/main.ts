// The only module with side effects: config → telemetry → deps → server → shutdown.
import { runMain } from "@deai/kit";

import { loadMarketplaceConfig } from "./config.js";
import { marketplace } from "./definition.js";

await runMain(marketplace, loadMarketplaceConfig());
