// The only module with side effects: config → telemetry → deps → server → shutdown.
import { runMain } from "@deai/kit";

import { loadSlashingConfig } from "./config.js";
import { slashing } from "./definition.js";

await runMain(slashing, loadSlashingConfig());
