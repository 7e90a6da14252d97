// The only module with side effects: config → telemetry → deps → server → shutdown.
import { runMain } from "@deai/kit";

import { loadIngestionConfig } from "./config.js";
import { ingestionDefinition } from "./definition.js";

const config = loadIngestionConfig();
await runMain(ingestionDefinition(config), config);
