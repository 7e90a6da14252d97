/**
 * The Kubernetes objects of one group's gang, built from the TrainingJob (pure): what the
 * Kubernetes runtime server-side-applies for a `createGroup` action.
 *
 *   - one Pod per worker (`workersPerGroup`, one pipeline stage each), restartPolicy Never (the
 *     operator, not the kubelet, decides restarts), `nvidia.com/gpu` as request = limit
 *     (extended resources must be equal), owned by the TrainingJob (controller reference, so
 *     deleting the job garbage-collects them), labelled with job, group, attempt and worker;
 *   - one headless Service per group (`publishNotReadyAddresses`, so workers resolve each other
 *     while rendezvousing); pods set `hostname` + `subdomain` to get stable DNS names;
 *   - optionally a scheduling.x-k8s.io/v1alpha1 PodGroup (coscheduling plugin) with
 *     `minMember` = the gang size, and its label on every pod;
 *   - a ConfigMap with the trainer's job config (services/trainer's camelCase config).
 *
 * Rendezvous (services/trainer's elastic mode): every group is its own torch.distributed world,
 * so MASTER_ADDR is worker 0 of the worker's own group, WORLD_SIZE = workers, RANK = worker; the
 * groups meet only at the job's exchange coordinator (DEAI_EXCHANGE, `exchangeObjects`), so one
 * group can fail and rejoin without the others restarting. DEAI_GROUP / DEAI_GROUPS / DEAI_STAGE
 * as services/trainer reads them (config.rendezvous_from_env). `trainerEnv` is shared with the
 * local process runtime, which only swaps the addresses.
 */
import type { TrainingJob } from "@deai/contracts/deai/training/v1/training_pb";

import type { TrainerPodTemplate } from "../config.js";
import { API_VERSION, CRD_KIND } from "./crd.js";
import { desiredGroupCount, type ResumeFrom } from "./reconcile.js";

export const RENDEZVOUS_PORT = 29500;
/** The exchange coordinator's port (services/trainer deai_trainer.coordinator). */
export const EXCHANGE_PORT = 29600;
export const CONFIG_MOUNT = "/etc/deai";
export const DATASETS_DIR = "/var/run/deai/datasets";
/** Seconds a stopping worker gets to write its checkpoint (SIGTERM → SIGKILL). */
export const CHECKPOINT_GRACE_S = 120;
export const LABELS = {
  job: "deai.dev/job",
  group: "deai.dev/group",
  attempt: "deai.dev/attempt",
  worker: "deai.dev/worker",
  podGroup: "scheduling.x-k8s.io/pod-group",
} as const;

type K8sObject = { apiVersion: string; kind: string; metadata: Record<string, unknown>; [k: string]: unknown };

export interface GroupObjectsInput {
  readonly job: TrainingJob;
  /** metadata.uid of the TrainingJob (for owner references). */
  readonly uid: string;
  readonly group: number;
  readonly attempt: number;
  readonly template: TrainerPodTemplate;
  readonly resumeFrom?: ResumeFrom;
  readonly leaseId?: string;
  /** Emit a PodGroup and schedule with this scheduler (e.g. "scheduler-plugins-scheduler"). */
  readonly coscheduling?: { readonly schedulerName: string };
}

export const groupName = (jobId: string, group: number): string => `${jobId}-g${group}`;
export const workerHostname = (jobId: string, group: number, worker: number): string => `${jobId}-g${group}-w${worker}`;

const workersOf = (job: TrainingJob): number => Math.max(1, job.spec?.resources?.workersPerGroup || job.spec?.diloco?.pipelineStages || 1);

function ownerReference(job: TrainingJob, uid: string): Record<string, unknown> {
  return { apiVersion: API_VERSION, kind: CRD_KIND, name: job.jobId, uid, controller: true, blockOwnerDeletion: true };
}

function baseLabels(job: TrainingJob, group: number): Record<string, string> {
  return {
    "app.kubernetes.io/name": "trainer",
    "app.kubernetes.io/part-of": "deai-os",
    "app.kubernetes.io/managed-by": "trainer-operator",
    [LABELS.job]: job.jobId,
    [LABELS.group]: String(group),
  };
}

/** The trainer's job config (services/trainer README, "Job config") for this TrainingJob. */
export function trainerConfig(job: TrainingJob): Record<string, unknown> {
  const s = job.spec;
  const d = s?.diloco;
  const model = s?.model.case === "modelConfig" ? s.model.value : undefined;
  const c = d?.compression;
  const inner = d?.innerOptimizer;
  const outer = d?.outerOptimizer;
  const manifest = (i: number): string | undefined => {
    const ds = s?.datasets[i];
    return ds === undefined ? undefined : `${DATASETS_DIR}/${ds.algorithm}-${ds.hex}.manifest.json`;
  };
  const prefix = s?.checkpoints?.uriPrefix ?? "";
  const m = /^(s3|s3\+https?):\/\/([^/]+)\/?(.*)$/.exec(prefix);
  return {
    jobId: job.jobId,
    method: "diloco-x",
    seed: Number(s?.seed ?? 0n),
    ...(model !== undefined
      ? {
          model: {
            ...(model.contextLength ? { contextLength: model.contextLength } : {}),
            ...(model.hiddenSize ? { dModel: model.hiddenSize } : {}),
            ...(model.numLayers ? { nLayers: model.numLayers } : {}),
            ...(model.numHeads ? { nHeads: model.numHeads } : {}),
          },
        }
      : {}),
    pipeline: { stages: workersOf(job) },
    // The first dataset trains; the second (if any) is the held-out set.
    data: { train: manifest(0), heldOut: manifest(1) ?? manifest(0), ...(d?.globalBatchSize ? { batchSize: d.globalBatchSize } : {}) },
    budget: { tokens: Number(d?.maxTokens ?? 0n) },
    ...(inner !== undefined
      ? {
          inner: {
            ...(inner.learningRate ? { lr: inner.learningRate } : {}),
            weightDecay: inner.weightDecay,
            ...(inner.beta1 && inner.beta2 ? { betas: [inner.beta1, inner.beta2] } : {}),
            ...(inner.warmupSteps ? { warmupSteps: inner.warmupSteps } : {}),
            gradClip: inner.maxGradNorm,
          },
        }
      : {}),
    ...(outer !== undefined && outer.learningRate ? { outer: { lr: outer.learningRate, momentum: outer.momentum } } : {}),
    diloco: {
      innerSteps: d?.innerSteps ?? 30,
      delayedOverlap: d?.delayedOverlap ?? true,
      ...(c !== undefined
        ? {
            compression: {
              enabled: c.enabled,
              lowRank: c.lowRank,
              quantize: c.bits > 0,
              ...(c.bits > 0 ? { bits: c.bits } : {}),
              ...(c.energy ? { energy: c.energy } : {}),
              ...(c.minRank ? { minRank: c.minRank } : {}),
              ...(c.maxRank ? { maxRank: c.maxRank } : {}),
            },
          }
        : {}),
    },
    checkpoint: {
      ...(m !== null ? { endpoint: m[1] === "s3" ? "s3://" : "", bucket: m[2], prefix: m[3]!.replace(/\/$/, "") } : {}),
      everyRounds: s?.checkpoints?.everyRounds ?? 0,
    },
  };
}

/** The ConfigMap every worker of the job mounts at CONFIG_MOUNT/job.json. */
export function jobConfigMap(job: TrainingJob, uid: string): K8sObject {
  return {
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: {
      name: `${job.jobId}-trainer`,
      ...(job.namespace ? { namespace: job.namespace } : {}),
      labels: baseLabels(job, 0),
      ownerReferences: [ownerReference(job, uid)],
    },
    data: { "job.json": JSON.stringify(trainerConfig(job), null, 2) },
  };
}

/** Where a group's workers rendezvous and where the job's exchange coordinator listens. */
export interface TrainerEndpoints {
  /** Worker 0 of this group (its torch.distributed TCP store). */
  readonly masterAddr: string;
  readonly masterPort: number;
  /** The job's exchange coordinator, e.g. http://job-exchange.ns.svc:29600. */
  readonly exchangeUrl: string;
}

export const exchangeName = (jobId: string): string => `${jobId}-exchange`;

/** The cluster addresses of a group's rendezvous and of the job's coordinator. */
export function clusterEndpoints(job: TrainingJob, group: number): TrainerEndpoints {
  const ns = job.namespace || "default";
  return {
    masterAddr: `${workerHostname(job.jobId, group, 0)}.${groupName(job.jobId, group)}.${ns}.svc`,
    masterPort: RENDEZVOUS_PORT,
    exchangeUrl: `http://${exchangeName(job.jobId)}.${ns}.svc:${EXCHANGE_PORT}`,
  };
}

/** The environment of one trainer worker (what services/trainer reads), for either runtime. */
export function trainerEnv(
  job: TrainingJob,
  group: number,
  worker: number,
  attempt: number,
  at: TrainerEndpoints,
  resumeFrom?: ResumeFrom,
  leaseId?: string,
): { name: string; value: string }[] {
  const workers = workersOf(job);
  return [
    { name: "MASTER_ADDR", value: at.masterAddr },
    { name: "MASTER_PORT", value: String(at.masterPort) },
    { name: "WORLD_SIZE", value: String(workers) },
    { name: "RANK", value: String(worker) },
    { name: "DEAI_GROUP", value: String(group) },
    { name: "DEAI_GROUPS", value: String(desiredGroupCount(job)) },
    { name: "DEAI_STAGE", value: String(worker) },
    { name: "DEAI_EXCHANGE", value: at.exchangeUrl },
    { name: "DEAI_JOB_ID", value: job.jobId },
    { name: "DEAI_ATTEMPT", value: String(attempt) },
    ...(resumeFrom !== undefined
      ? [
          { name: "DEAI_RESUME_FROM", value: resumeFrom.uri },
          { name: "DEAI_RESUME_DIGEST", value: `${resumeFrom.digest.algorithm}:${resumeFrom.digest.hex}` },
        ]
      : []),
    ...(leaseId !== undefined ? [{ name: "DEAI_LEASE_ID", value: leaseId }] : []),
  ];
}

/** The rendezvous environment of one worker pod. */
export function rendezvousEnv(
  job: TrainingJob,
  group: number,
  worker: number,
  attempt: number,
  resumeFrom?: ResumeFrom,
  leaseId?: string,
): { name: string; value: string }[] {
  return trainerEnv(job, group, worker, attempt, clusterEndpoints(job, group), resumeFrom, leaseId);
}

/** The job's exchange coordinator: one Pod (the trainer image, `deai_trainer.coordinator`) and its Service. */
export function exchangeObjects(job: TrainingJob, uid: string, template: TrainerPodTemplate, timeoutS = 30): K8sObject[] {
  const name = exchangeName(job.jobId);
  const ns = job.namespace ? { namespace: job.namespace } : {};
  const owner = [ownerReference(job, uid)];
  const labels = { ...baseLabels(job, 0), "app.kubernetes.io/component": "exchange" };
  delete (labels as Record<string, string>)[LABELS.group];
  const image = job.spec?.trainer?.image || template.image;
  if (!image) throw new RangeError("no trainer image: set spec.trainer.image or the chart's trainer.image");
  return [
    {
      apiVersion: "v1",
      kind: "Service",
      metadata: { name, ...ns, labels, ownerReferences: owner },
      spec: {
        selector: { [LABELS.job]: job.jobId, "app.kubernetes.io/component": "exchange" },
        ports: [{ name: "exchange", port: EXCHANGE_PORT, targetPort: EXCHANGE_PORT, protocol: "TCP" }],
      },
    },
    {
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name, ...ns, labels, ownerReferences: owner },
      spec: {
        restartPolicy: "Never",
        containers: [
          {
            name: "exchange",
            image,
            command: ["python3", "-m", "deai_trainer.coordinator"],
            args: [
              "--host",
              "0.0.0.0",
              "--port",
              String(EXCHANGE_PORT),
              "--timeout-s",
              String(timeoutS),
              "--groups",
              String(desiredGroupCount(job)),
            ],
            ports: [{ name: "exchange", containerPort: EXCHANGE_PORT, protocol: "TCP" }],
            readinessProbe: { httpGet: { path: "/healthz", port: EXCHANGE_PORT } },
          },
        ],
      },
    },
  ];
}

function resources(job: TrainingJob, template: TrainerPodTemplate): Record<string, Record<string, string>> {
  const r = job.spec?.resources;
  const requests: Record<string, string> = { ...(template.resources?.requests ?? {}) };
  const limits: Record<string, string> = { ...(template.resources?.limits ?? {}) };
  if (r?.cpu) requests.cpu = r.cpu;
  if (r?.memory) {
    requests.memory = r.memory;
    limits.memory = r.memory;
  }
  if (r?.gpus) {
    requests["nvidia.com/gpu"] = String(r.gpus);
    limits["nvidia.com/gpu"] = String(r.gpus);
  }
  return { ...(Object.keys(requests).length > 0 ? { requests } : {}), ...(Object.keys(limits).length > 0 ? { limits } : {}) };
}

/** Every object of one group's gang: Service, Pods, and the PodGroup when coscheduling. */
export function groupObjects(input: GroupObjectsInput): K8sObject[] {
  const { job, uid, group, attempt, template } = input;
  const workers = workersOf(job);
  const name = groupName(job.jobId, group);
  if (workerHostname(job.jobId, group, workers - 1).length > 63)
    throw new RangeError(`job id ${job.jobId} too long: pod hostnames must be DNS labels (63 characters)`);
  const ns = job.namespace ? { namespace: job.namespace } : {};
  const owner = [ownerReference(job, uid)];
  const labels = baseLabels(job, group);
  const out: K8sObject[] = [
    {
      apiVersion: "v1",
      kind: "Service",
      metadata: { name, ...ns, labels, ownerReferences: owner },
      spec: {
        clusterIP: "None",
        publishNotReadyAddresses: true,
        selector: { [LABELS.job]: job.jobId, [LABELS.group]: String(group) },
        ports: [{ name: "rendezvous", port: RENDEZVOUS_PORT, targetPort: RENDEZVOUS_PORT, protocol: "TCP" }],
      },
    },
  ];
  if (input.coscheduling !== undefined) {
    out.push({
      apiVersion: "scheduling.x-k8s.io/v1alpha1",
      kind: "PodGroup",
      metadata: { name: `${name}-a${attempt}`, ...ns, labels, ownerReferences: owner },
      spec: { minMember: workers, scheduleTimeoutSeconds: job.spec?.gang?.scheduleTimeoutSeconds || 300 },
    });
  }
  const trainer = job.spec?.trainer;
  const image = trainer?.image || template.image;
  if (!image) throw new RangeError("no trainer image: set spec.trainer.image or the chart's trainer.image");
  for (let w = 0; w < workers; w++) {
    const podLabels = {
      ...labels,
      [LABELS.attempt]: String(attempt),
      [LABELS.worker]: String(w),
      ...(input.coscheduling !== undefined ? { [LABELS.podGroup]: `${name}-a${attempt}` } : {}),
    };
    const rendezvous = rendezvousEnv(job, group, w, attempt, input.resumeFrom, input.leaseId);
    const reserved = new Set(rendezvous.map((e) => e.name));
    out.push({
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name: `${name}-a${attempt}-w${w}`, ...ns, labels: podLabels, ownerReferences: owner },
      spec: {
        restartPolicy: "Never",
        hostname: workerHostname(job.jobId, group, w),
        subdomain: name,
        terminationGracePeriodSeconds: CHECKPOINT_GRACE_S,
        ...(input.coscheduling !== undefined ? { schedulerName: input.coscheduling.schedulerName } : {}),
        ...(template.nodeSelector !== undefined ? { nodeSelector: { ...template.nodeSelector } } : {}),
        ...(template.tolerations !== undefined ? { tolerations: template.tolerations.map((t) => ({ ...t })) } : {}),
        ...(template.affinity !== undefined ? { affinity: { ...template.affinity } } : {}),
        ...(template.runtimeClassName !== undefined ? { runtimeClassName: template.runtimeClassName } : {}),
        ...(template.priorityClassName !== undefined ? { priorityClassName: template.priorityClassName } : {}),
        ...(template.serviceAccountName !== undefined ? { serviceAccountName: template.serviceAccountName } : {}),
        containers: [
          {
            name: "trainer",
            image,
            ...(trainer !== undefined && trainer.command.length > 0 ? { command: [...trainer.command] } : {}),
            args: trainer !== undefined && trainer.args.length > 0 ? [...trainer.args] : ["--config", `${CONFIG_MOUNT}/job.json`],
            // The operator's rendezvous variables win over the user's.
            env: [
              ...(trainer?.env ?? []).filter((e) => !reserved.has(e.name)).map((e) => ({ name: e.name, value: e.value })),
              ...rendezvous,
            ],
            ports: [{ name: "rendezvous", containerPort: RENDEZVOUS_PORT, protocol: "TCP" }],
            resources: resources(job, template),
            volumeMounts: [{ name: "job-config", mountPath: CONFIG_MOUNT, readOnly: true }],
          },
        ],
        volumes: [{ name: "job-config", configMap: { name: `${job.jobId}-trainer` } }],
      },
    });
  }
  return out;
}
