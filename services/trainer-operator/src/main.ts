// The only module with side effects: config → telemetry → deps → server → shutdown.
import { runMain } from "@deai/kit";

import { loadTrainerOperatorConfig } from "./config.js";
import { trainerOperator } from "./definition.js";

await runMain(trainerOperator, loadTrainerOperatorConfig());
