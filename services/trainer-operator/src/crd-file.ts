/**
 * The committed CRD file's text: k8s/crds/trainingjobs.deai.dev.yaml (and its chart copy
 * charts/deai/crds/) is exactly `renderCrdYaml()`. `npm run gen:crd -w @deai/trainer-operator`
 * writes both; test/crd.test.ts fails when the committed files differ.
 */
import { stringify } from "yaml";

import { trainingJobCrd } from "./domain/crd.js";

export const CRD_FILE = "k8s/crds/trainingjobs.deai.dev.yaml";
export const CRD_CHART_COPY = "charts/deai/crds/trainingjobs.deai.dev.yaml";

const HEADER = `# TrainingJob: one DiLoCoX training run across one or more leased GPU clusters.
# The trainer-operator reconciles each job into gang-scheduled worker pods per group
# (one headless Service per group for rendezvous) and reports progress in .status.
#
# GENERATED from proto/deai/training/v1/training.proto (TrainingJobSpec, TrainingJobStatus)
# by services/trainer-operator (src/domain/crd.ts): do not edit. After a proto change run
#   npx turbo run generate build --filter=@deai/trainer-operator... && npm run gen:crd -w @deai/trainer-operator
# which writes this file and its identical copy charts/deai/crds/ (Helm installs it before the
# chart's templates; infra/helm/check.sh fails if the copies differ, the operator's test if
# either differs from the proto).
`;

export function renderCrdYaml(): string {
  return HEADER + stringify(trainingJobCrd(), { lineWidth: 0 });
}
