// The only module with side effects: config → telemetry → deps → server → shutdown.
import { runMain } from "@deai/kit";

import { loadLedgerConfig } from "./config.js";
import { ledger } from "./definition.js";

await runMain(ledger, loadLedgerConfig());
