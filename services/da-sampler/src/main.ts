// The only module with side effects: config → telemetry → deps → server → shutdown.
import { runMain } from "@deai/kit";

import { loadDaSamplerConfig } from "./config.js";
import { daSampler } from "./definition.js";

await runMain(daSampler, loadDaSamplerConfig());
