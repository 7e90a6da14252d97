// TRAINER_POD_TEMPLATE (rendered by the chart from `trainer.*`) is checked at start.
import { ConfigError } from "@deai/kit";

import { loadTrainerOperatorConfig } from "../src/config.js";

const load = (template?: string) => loadTrainerOperatorConfig(template === undefined ? {} : { TRAINER_POD_TEMPLATE: template });

it("defaults to an empty template", () => {
  expect(load().TRAINER_POD_TEMPLATE).toEqual({});
});

it("accepts the chart's GPU template", () => {
  const t = {
    image: "ghcr.io/deai-os/deai-trainer:0.1.0",
    nodeSelector: { "nvidia.com/gpu.present": "true" },
    tolerations: [{ key: "nvidia.com/gpu", operator: "Exists", effect: "NoSchedule" }],
    resources: { requests: { cpu: "2", memory: "8Gi", "nvidia.com/gpu": "1" }, limits: { memory: "16Gi", "nvidia.com/gpu": "1" } },
  };
  expect(load(JSON.stringify(t)).TRAINER_POD_TEMPLATE).toEqual(t);
});

it.each([
  ["not JSON", "{", /not JSON/],
  ["not an object", "[]", /JSON object/],
  ["unknown field", '{"gpus": 1}', /unknown field\(s\) gpus/],
  ["numeric quantity", '{"resources": {"limits": {"nvidia.com/gpu": 1}}}', /quantity strings/],
  ["bad quantity", '{"resources": {"limits": {"memory": "lots"}}}', /quantity strings/],
  ["unknown resources key", '{"resources": {"limit": {}}}', /not requests or limits/],
  ["non-string selector", '{"nodeSelector": {"a": true}}', /nodeSelector/],
  ["tolerations not a list", '{"tolerations": {}}', /tolerations/],
])("refuses %s", (_what, text, message) => {
  expect(() => load(text)).toThrow(ConfigError);
  expect(() => load(text)).toThrow(message);
});
