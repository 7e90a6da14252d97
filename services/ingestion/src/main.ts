// The only module with side effects: config → telemetry → deps → server → shutdown.
import { runMain } from "@deai/kit";

import { loadIngestionConfig } from "./config.js";
import { ingestion } from "./definition.js";

await runMain(ingestion, loadIngestionConfig());
