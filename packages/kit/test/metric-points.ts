// The test kit's metric reader, installed when imported, so the kit's instruments record into it.
import { installTestMetricReader } from "@deai/testkit";

installTestMetricReader();

export { metricPoints, type MetricPoint } from "@deai/testkit";
