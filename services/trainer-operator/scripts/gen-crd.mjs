// Writes the TrainingJob CRD generated from deai.training.v1 (build the package first).
import { writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

import { CRD_CHART_COPY, CRD_FILE, renderCrdYaml } from "../dist/crd-file.js";

const root = join(dirname(fileURLToPath(import.meta.url)), "../../..");
const text = renderCrdYaml();
for (const f of [CRD_FILE, CRD_CHART_COPY]) {
  writeFileSync(join(root, f), text);
  console.log(`wrote ${f}`);
}
