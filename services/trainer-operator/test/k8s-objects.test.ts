// The gang's Kubernetes objects validate against the Kubernetes schemas (kubernetes-models, as
// infra/helm/validate-manifests.mjs uses them) and carry what the trainer reads.
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

import { create } from "@bufbuild/protobuf";
import { ConfigMap } from "kubernetes-models/v1/ConfigMap";
import { Pod } from "kubernetes-models/v1/Pod";
import { Service } from "kubernetes-models/v1/Service";
import { parse } from "yaml";

import { EnvVarSchema, TrainerTemplateSchema, type TrainingJob } from "@deai/contracts/deai/training/v1/training_pb";

import { protoFromCrd } from "../src/domain/crd.js";
import { EXCHANGE_PORT, LABELS, exchangeObjects, groupObjects, jobConfigMap, trainerConfig } from "../src/domain/k8s-objects.js";

const root = join(dirname(fileURLToPath(import.meta.url)), "../../..");
const exampleJob = (): TrainingJob => {
  const j = protoFromCrd(parse(readFileSync(join(root, "k8s/examples/trainingjob.yaml"), "utf8")));
  j.namespace = "ml";
  return j;
};
const template = {
  image: "ghcr.io/deai-os/trainer:default",
  nodeSelector: { "nvidia.com/gpu.present": "true" },
  tolerations: [{ key: "nvidia.com/gpu", operator: "Exists", effect: "NoSchedule" }],
};
const resume = { digest: { algorithm: "sha256", hex: "c".repeat(64) }, uri: "s3://deai/jobs/tiny/round-000010" };
type Obj = {
  kind: string;
  metadata: { name: string; labels: Record<string, string>; ownerReferences: Record<string, unknown>[] };
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- reading generated objects
  spec: any;
};

const envOf = (pod: Obj): Record<string, string> =>
  Object.fromEntries((pod.spec.containers[0].env as { name: string; value: string }[]).map((e) => [e.name, e.value]));

describe("a group's Kubernetes objects", () => {
  it("validate against the Kubernetes schemas: a headless Service and one GPU pod per worker, owned by the job", () => {
    const objs = groupObjects({
      job: exampleJob(),
      uid: "0b7e-uid",
      group: 1,
      attempt: 2,
      template,
      resumeFrom: resume,
      leaseId: "lease-8b7d03",
    }) as unknown as Obj[];
    expect(objs.map((o) => `${o.kind} ${o.metadata.name}`)).toEqual([
      "Service tiny-gpt-two-clusters-g1",
      "Pod tiny-gpt-two-clusters-g1-a2-w0",
      "Pod tiny-gpt-two-clusters-g1-a2-w1",
    ]);
    for (const o of objs) {
      const Model = o.kind === "Pod" ? Pod : Service;
      expect(() => new Model(o as never).validate()).not.toThrow();
      expect(o.metadata.ownerReferences).toEqual([
        {
          apiVersion: "deai.dev/v1alpha1",
          kind: "TrainingJob",
          name: "tiny-gpt-two-clusters",
          uid: "0b7e-uid",
          controller: true,
          blockOwnerDeletion: true,
        },
      ]);
    }
    const [svc, w0, w1] = objs as [Obj, Obj, Obj];
    expect(svc.spec).toMatchObject({
      clusterIP: "None",
      publishNotReadyAddresses: true,
      selector: { [LABELS.job]: "tiny-gpt-two-clusters", [LABELS.group]: "1" },
    });
    expect(w1.metadata.labels).toMatchObject({ [LABELS.group]: "1", [LABELS.attempt]: "2", [LABELS.worker]: "1" });
    expect(w0.spec).toMatchObject({
      restartPolicy: "Never",
      hostname: "tiny-gpt-two-clusters-g1-w0",
      subdomain: "tiny-gpt-two-clusters-g1",
      nodeSelector: template.nodeSelector,
    });
    const c = w0.spec.containers[0];
    expect(c.image).toBe("ghcr.io/deai-os/trainer:0.1.0"); // the job's image wins over the chart default
    expect(c.resources).toEqual({
      requests: { cpu: "8", memory: "32Gi", "nvidia.com/gpu": "1" },
      limits: { memory: "32Gi", "nvidia.com/gpu": "1" },
    });
    expect(c.args).toEqual(["--config", "/etc/deai/job.json"]);
    // The schema check is real: a port that is not a number is refused.
    const broken = { ...w0, spec: { ...w0.spec, containers: [{ ...c, ports: [{ containerPort: "rendezvous" }] }] } };
    expect(() => new Pod(broken as never).validate()).toThrow();
  });

  it("give every worker the rendezvous environment services/trainer reads (its group's world, the job's exchange)", () => {
    const job = exampleJob();
    job.spec!.trainer = create(TrainerTemplateSchema, {
      image: "x",
      env: [create(EnvVarSchema, { name: "RANK", value: "99" }), create(EnvVarSchema, { name: "NCCL_DEBUG", value: "INFO" })],
    });
    const pods = (
      groupObjects({ job, uid: "u", group: 1, attempt: 0, template, resumeFrom: resume, leaseId: "lease-8b7d03" }) as unknown as Obj[]
    ).filter((o) => o.kind === "Pod");
    const env = pods.map(envOf);
    // elastic mode: each group is its own world (rank = worker), groups meet at the exchange
    expect(env.map((e) => [e.RANK, e.DEAI_GROUP, e.DEAI_STAGE, e.WORLD_SIZE, e.DEAI_GROUPS])).toEqual([
      ["0", "1", "0", "2", "2"],
      ["1", "1", "1", "2", "2"],
    ]);
    expect(env[0]).toMatchObject({
      MASTER_ADDR: "tiny-gpt-two-clusters-g1-w0.tiny-gpt-two-clusters-g1.ml.svc",
      DEAI_EXCHANGE: "http://tiny-gpt-two-clusters-exchange.ml.svc:29600",
      MASTER_PORT: "29500",
      NCCL_DEBUG: "INFO",
      DEAI_RESUME_FROM: resume.uri,
      DEAI_RESUME_DIGEST: `sha256:${"c".repeat(64)}`,
      DEAI_LEASE_ID: "lease-8b7d03",
    });
    // The user's RANK does not override the operator's, and appears once.
    expect((pods[0]!.spec.containers[0].env as { name: string }[]).filter((e) => e.name === "RANK")).toHaveLength(1);
  });

  it("run the job's exchange coordinator as a Pod behind a Service that the workers' DEAI_EXCHANGE names", () => {
    const job = exampleJob();
    const objs = exchangeObjects(job, "u", { image: "registry/trainer:1" }) as unknown as Obj[];
    const svc = objs.find((o) => o.kind === "Service")!;
    const pod = objs.find((o) => o.kind === "Pod")!;
    expect(() => new Service(svc as never).validate()).not.toThrow();
    expect(() => new Pod(pod as never).validate()).not.toThrow();
    expect(svc.metadata.name).toBe("tiny-gpt-two-clusters-exchange");
    const c = pod.spec.containers[0];
    expect(c.command).toEqual(["python3", "-m", "deai_trainer.coordinator"]);
    expect(c.args).toEqual(["--host", "0.0.0.0", "--port", String(EXCHANGE_PORT), "--timeout-s", "30", "--groups", "2"]);
    // the Service selects the coordinator pod only, never a worker
    expect(pod.metadata.labels).toMatchObject(svc.spec.selector);
    const worker = (groupObjects({ job, uid: "u", group: 0, attempt: 0, template: { image: "x" } }) as unknown as Obj[]).find(
      (o) => o.kind === "Pod",
    )!;
    expect(Object.entries(svc.spec.selector).every(([k, v]) => worker.metadata.labels[k] === v)).toBe(false);
  });

  it("with coscheduling: a PodGroup of the gang size, its label and scheduler on every pod", () => {
    const objs = groupObjects({
      job: exampleJob(),
      uid: "u",
      group: 0,
      attempt: 1,
      template,
      coscheduling: { schedulerName: "scheduler-plugins-scheduler" },
    }) as unknown as Obj[];
    const pg = objs.find((o) => o.kind === "PodGroup")!;
    expect(pg).toMatchObject({
      apiVersion: "scheduling.x-k8s.io/v1alpha1",
      metadata: { name: "tiny-gpt-two-clusters-g0-a1" },
      spec: { minMember: 2, scheduleTimeoutSeconds: 600 },
    });
    for (const p of objs.filter((o) => o.kind === "Pod")) {
      expect(p.metadata.labels[LABELS.podGroup]).toBe("tiny-gpt-two-clusters-g0-a1");
      expect(p.spec.schedulerName).toBe("scheduler-plugins-scheduler");
      expect(() => new Pod(p as never).validate()).not.toThrow();
    }
  });

  it("refuse what Kubernetes would: no image anywhere, a job id too long for pod hostnames", () => {
    const job = exampleJob();
    job.spec!.trainer = create(TrainerTemplateSchema, {});
    expect(() => groupObjects({ job, uid: "u", group: 0, attempt: 0, template: {} })).toThrow(/no trainer image/);
    const long = exampleJob();
    long.jobId = "j".repeat(58);
    expect(() => groupObjects({ job: long, uid: "u", group: 0, attempt: 0, template })).toThrow(/DNS labels/);
  });

  it("carry the trainer's job config in a ConfigMap, in services/trainer's field names", () => {
    const job = exampleJob();
    const cm = jobConfigMap(job, "u") as unknown as { data: Record<string, string> };
    expect(() => new ConfigMap(cm as never).validate()).not.toThrow();
    const cfg = JSON.parse(cm.data["job.json"]!);
    expect(cfg).toEqual(trainerConfig(job));
    expect(cfg).toMatchObject({
      jobId: "tiny-gpt-two-clusters",
      method: "diloco-x",
      seed: 1,
      model: { contextLength: 1024, dModel: 768, nLayers: 12, nHeads: 12 },
      pipeline: { stages: 2 },
      budget: { tokens: 2000000000 },
      inner: { lr: 0.0004, weightDecay: 0.1, betas: [0.9, 0.95], warmupSteps: 1000, gradClip: 1 },
      outer: { lr: 0.7, momentum: 0.9 },
      diloco: {
        innerSteps: 100,
        delayedOverlap: true,
        compression: { enabled: true, lowRank: true, quantize: true, bits: 8, energy: 0.8, minRank: 4, maxRank: 64 },
      },
      checkpoint: { endpoint: "s3://", bucket: "deai", prefix: "jobs/tiny-gpt-two-clusters", everyRounds: 10 },
    });
    expect(cfg.data.train).toBe(
      "/var/run/deai/datasets/sha256-9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08.manifest.json",
    );
    expect(cfg.data.heldOut).toMatch(/sha256-60303ae2/);
  });
});
