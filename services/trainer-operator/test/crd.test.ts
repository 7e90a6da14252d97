// The TrainingJob CRD is generated from deai.training.v1: the committed files must equal the
// generator's output, the example must validate against it and survive a round trip through
// the proto message, and what the proto cannot express must be refused precisely.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

import { create } from "@bufbuild/protobuf";
import { parse } from "yaml";

import {
  GroupPhase,
  RestartStrategy,
  TrainingJobPhase,
  TrainingJobPhaseSchema,
  TrainingJobSchema,
  TrainingJobStatusSchema,
} from "@deai/contracts/deai/training/v1/training_pb";

import { CRD_CHART_COPY, CRD_FILE, renderCrdYaml } from "../src/crd-file.js";
import {
  CrdShapeError,
  OVERLAY,
  crdFromProto,
  enumValueCrdName,
  overlayTargets,
  protoFromCrd,
  trainingJobCrd,
  type SchemaNode,
} from "../src/domain/crd.js";

const root = join(dirname(fileURLToPath(import.meta.url)), "../../..");
const read = (f: string): string => readFileSync(join(root, f), "utf8");
const example = (): Record<string, unknown> => parse(read("k8s/examples/trainingjob.yaml")) as Record<string, unknown>;

/** ajv over the CRD schema, with OpenAPI v3.0's boolean exclusive bounds turned into draft-2019 ones (as infra/helm/validate-manifests.mjs does). */
function validator(): (obj: unknown) => { ok: boolean; errors: string } {
  const require = createRequire(join(root, "node_modules/@kubernetes-models/validate/package.json"));
  const Ajv = require("ajv").default;
  const ajv = new Ajv({ strict: false, allErrors: true, formats: { int32: true, int64: true } });
  require("ajv-formats").default(ajv);
  const conv = (n: unknown): unknown => {
    if (Array.isArray(n)) return n.map(conv);
    if (n === null || typeof n !== "object") return n;
    const o: SchemaNode = Object.fromEntries(Object.entries(n).map(([k, v]) => [k, conv(v)]));
    for (const [flag, bound] of [
      ["exclusiveMinimum", "minimum"],
      ["exclusiveMaximum", "maximum"],
    ] as const) {
      if (o[flag] === true) {
        o[flag] = o[bound];
        delete o[bound];
      }
    }
    return o;
  };
  const crd = trainingJobCrd() as { spec: { versions: { schema: { openAPIV3Schema: unknown } }[] } };
  const validate = ajv.compile(conv(crd.spec.versions[0]!.schema.openAPIV3Schema));
  return (obj) => ({ ok: validate(obj) as boolean, errors: JSON.stringify(validate.errors ?? []) });
}

describe("TrainingJob CRD generated from deai.training.v1", () => {
  it("is what the committed k8s/crds file and its chart copy say (run `npm run gen:crd -w @deai/trainer-operator` after a proto change)", () => {
    const generated = renderCrdYaml();
    expect(read(CRD_FILE)).toBe(generated);
    expect(read(CRD_CHART_COPY)).toBe(generated);
  });

  it("names only fields and messages the proto has in its overlay", () => {
    const targets = overlayTargets();
    const stale = Object.keys(OVERLAY).filter((k) => !targets.has(k));
    expect(stale).toEqual([]);
  });

  it("leaves deprecated proto fields out and mirrors every phase of the proto enum", () => {
    // eslint-disable-next-line @typescript-eslint/no-explicit-any -- walking a generated schema
    const s = (trainingJobCrd() as any).spec.versions[0].schema.openAPIV3Schema.properties;
    expect(Object.keys(s.spec.properties.diloco.properties.compression.properties).sort()).toEqual([
      "bits",
      "enabled",
      "energy",
      "errorFeedback",
      "lowRank",
      "maxRank",
      "minRank",
    ]);
    expect(s.spec.properties.diloco.properties.groups).toBeUndefined();
    expect(s.spec.properties.groups.properties.count.type).toBe("integer");
    const phases = TrainingJobPhaseSchema.values.filter((v) => v.number !== 0).map((v) => enumValueCrdName(TrainingJobPhaseSchema, v.name));
    expect(s.status.properties.phase.enum).toEqual(phases);
    expect(phases).toEqual(["Pending", "Starting", "Running", "Recovering", "Scaling", "Succeeded", "Failed", "Cancelled", "Suspended"]);
    expect(s.spec.properties.failurePolicy.properties.restartStrategy.enum).toEqual(["RestartGroup", "RecreateAll"]);
    expect(s.status.properties.conditions.items.properties.status.enum).toEqual(["True", "False", "Unknown"]);
    expect(s.spec.properties.baseCheckpoint.pattern).toMatch(/sha256/);
    expect(s.status.properties.groups.items.properties.gangCreatedAt.format).toBe("date-time");
    expect(s.status.properties.tokens.format).toBe("int64");
  });

  it("validates the example, which survives a round trip through the proto message", () => {
    const v = validator();
    const ex = example();
    const r = v(ex);
    expect(r.errors).toBe("[]");
    expect(r.ok).toBe(true);
    const job = protoFromCrd(ex);
    expect(job.spec?.groups?.count).toBe(2);
    expect(job.spec?.model.case).toBe("modelConfig");
    expect(job.spec?.datasets[0]?.algorithm).toBe("sha256");
    expect(job.spec?.failurePolicy?.restartStrategy).toBe(RestartStrategy.RESTART_GROUP);
    const back = crdFromProto(job);
    expect(back.spec).toEqual(ex.spec);
    expect(back.metadata.name).toBe((ex.metadata as { name: string }).name);
  });

  it("refuses what the schema refuses: no model, a bad digest, a wrong phase, a field moved elsewhere", () => {
    const v = validator();
    const noModel = example();
    delete (noModel.spec as Record<string, unknown>).modelConfig;
    expect(v(noModel).ok).toBe(false);
    const badDigest = example();
    (badDigest.spec as { datasets: string[] }).datasets[0] = "sha256:XYZ";
    expect(v(badDigest).ok).toBe(false);
    expect(() => protoFromCrd(badDigest)).toThrow(CrdShapeError);
    const badPhase = { ...example(), status: { phase: "Scheduling" } };
    expect(v(badPhase).ok).toBe(false);
    expect(() => protoFromCrd(badPhase)).toThrow(/status\.phase: must be one of Pending, Starting/);
    const unknown = example();
    (unknown.spec as Record<string, unknown>).maxRounds = 5; // moved to diloco.maxRounds
    expect(() => protoFromCrd(unknown)).toThrow(/spec\.maxRounds: unknown field/);
  });

  it("round-trips a status: phases, per-group state, 64-bit counters as numbers, restarts", () => {
    const job = create(TrainingJobSchema, {
      ...protoFromCrd(example()),
      jobId: "j1",
      namespace: "ns",
      ownerId: "actor-1",
      generation: 4n,
      status: create(TrainingJobStatusSchema, {
        phase: TrainingJobPhase.RECOVERING,
        round: 12n,
        tokens: 123456789012n,
        loss: 2.5,
        restarts: 3,
        observedGeneration: 4n,
        groups: [
          {
            group: 1,
            phase: GroupPhase.RESTARTING,
            restarts: 2,
            lastCheckpoint: { algorithm: "sha256", hex: "b".repeat(64) },
            placement: "provider-7",
            lastExitCode: 137,
          },
        ],
      }),
    });
    const obj = crdFromProto(job);
    expect(obj.status).toMatchObject({ phase: "Recovering", round: 12, tokens: 123456789012, restarts: 3 });
    expect((obj.status as { groups: unknown[] }).groups[0]).toMatchObject({
      phase: "Restarting",
      lastCheckpoint: `sha256:${"b".repeat(64)}`,
      lastExitCode: 137,
    });
    expect(obj.metadata).toMatchObject({ name: "j1", namespace: "ns", generation: 4, annotations: { "deai.dev/owner": "actor-1" } });
    expect(validator()(obj).errors).toBe("[]");
    const again = protoFromCrd(obj);
    expect(again.status?.groups[0]?.phase).toBe(GroupPhase.RESTARTING);
    expect(again.status?.tokens).toBe(123456789012n);
    expect(again.ownerId).toBe("actor-1");
  });
});
