// The only module with side effects: config → telemetry → deps → server → shutdown.
import { runMain } from "@deai/kit";

import { loadDaSamplerConfig } from "./config.js";
import { daSamplerDefinition } from "./definition.js";

const config = loadDaSamplerConfig();
await runMain(daSamplerDefinition(config), config);
