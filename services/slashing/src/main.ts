// The only module with side effects: config → telemetry → deps → server → shutdown.
import { runMain } from "@deai/kit";

import { loadSlashingConfig } from "./config.js";
import { slashingDefinition } from "./definition.js";

const config = loadSlashingConfig();
await runMain(slashingDefinition(config), config);
