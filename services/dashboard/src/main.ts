// The only module with side effects: config → telemetry → server → drain on SIGTERM.
import { createLogger, startTelemetry } from "@deai/kit";

import { loadDashboardConfig } from "./config.js";
import { DASHBOARD_VERSION, startDashboard } from "./dashboard.js";

const config = loadDashboardConfig();
const logger = createLogger({ service: "dashboard", level: config.LOG_LEVEL });
const telemetry = startTelemetry({
  service: "dashboard",
  version: DASHBOARD_VERSION,
  otlpEndpoint: config.OTEL_EXPORTER_OTLP_ENDPOINT,
  prometheus: config.METRICS_ENABLED,
  metricExportIntervalMs: config.OTEL_METRIC_EXPORT_INTERVAL,
});
const running = await startDashboard(config, { logger });
let signals = 0;
const onSignal = (signal: NodeJS.Signals): void => {
  if (signals++ > 0) {
    logger.warn({ signal }, "second signal: exiting now");
    process.exit(1);
  }
  logger.info({ signal }, "shutting down");
  const force = setTimeout(() => process.exit(1), config.SHUTDOWN_DRAIN_MS + config.SHUTDOWN_TIMEOUT_MS + 2_000);
  force.unref();
  void running
    .stop({ drainMs: config.SHUTDOWN_DRAIN_MS })
    .then(async (drained) => {
      await telemetry.shutdown().catch(() => undefined);
      process.exit(drained ? 0 : 1);
    })
    .catch(() => process.exit(1));
};
process.on("SIGTERM", onSignal);
process.on("SIGINT", onSignal);
