// Chart-environment test: proves, without a cluster, that the configuration the chart gives
// each service works. For the default values and for ci/ha-values.yaml it renders the chart
// (`helm template`), takes every Deployment's container environment exactly as a kubelet
// would build it (env values, Secrets and ConfigMaps the chart itself renders, base64-
// decoded; the downward API; $(VAR) references), runs the migrate initContainer's command and
// then `node services/<name>/dist/main.js` with that environment, and requires each service to
// become ready (/readyz) and the ledger and ingestion to serve one real request: an append
// that gets a receipt signed by the chart's log key, an upload that completes (anchored).
//
// Rewritten, and nothing else (see REWRITES): the addresses of what a cluster would provide
// and this machine provides elsewhere.
import { execFile } from "node:child_process";
import { createServer as createNetServer, type AddressInfo } from "node:net";
import { promisify } from "node:util";

import { generateActorKey } from "@deai/kit";
import { openCheckpoint, parseVerifierKey } from "@deai/proofs";
import {
  createTestDatabase,
  deleteNatsStreams,
  natsUrl,
  signedFetch,
  spawnService,
  startS3,
  uniqueNatsPrefix,
  type ServiceProcess,
  type TestDatabase,
  type TestS3,
} from "@deai/testkit";
import { parseAllDocuments } from "yaml";

import { envelope, sha256Hex, statement } from "../../../services/ledger/test/fixtures.js";
import { bytesOf, uploadAll } from "../../../services/ingestion/test/harness.js";

const run = promisify(execFile);
const root = new URL("../../../", import.meta.url).pathname;
const RELEASE = "deai";
const NAMESPACE = "deai";

interface K8sObject {
  kind: string;
  metadata: { name: string };
  data?: Record<string, string>;
  stringData?: Record<string, string>;
  spec?: Record<string, unknown>;
}
interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: {
    secretKeyRef?: { name: string; key: string; optional?: boolean };
    configMapKeyRef?: { name: string; key: string; optional?: boolean };
    fieldRef?: { fieldPath: string };
    resourceFieldRef?: unknown;
  };
}
interface Container {
  name: string;
  command: string[];
  env?: EnvVar[];
  envFrom?: { secretRef?: { name: string }; configMapRef?: { name: string }; prefix?: string }[];
}

async function render(valueFiles: string[]): Promise<K8sObject[]> {
  const { stdout: helm } = await run("bash", [`${root}infra/helm/helm.sh`]);
  const args = ["template", RELEASE, `${root}charts/deai`, "--namespace", NAMESPACE, "--kube-version", "1.31.0"];
  for (const f of valueFiles) args.push("-f", `${root}${f}`);
  const { stdout } = await run(helm.trim(), args, { maxBuffer: 64 * 1024 * 1024 });
  return parseAllDocuments(stdout)
    .map((d) => d.toJS() as K8sObject | null)
    .filter((o): o is K8sObject => o !== null);
}

/** What the chart's own Secrets and ConfigMaps hold, decoded: name -> key -> value. */
function chartData(objects: K8sObject[], kind: "Secret" | "ConfigMap"): Map<string, Record<string, string>> {
  const out = new Map<string, Record<string, string>>();
  for (const o of objects.filter((x) => x.kind === kind)) {
    const data: Record<string, string> = {};
    for (const [k, v] of Object.entries(o.data ?? {})) data[k] = kind === "Secret" ? Buffer.from(v, "base64").toString("utf8") : v;
    Object.assign(data, o.stringData ?? {});
    out.set(o.metadata.name, data);
  }
  return out;
}

/** Kubernetes' $(VAR) expansion of env values: defined names expand, $$ escapes, others stay. */
function expand(value: string, env: Record<string, string>): string {
  return value.replace(/\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)/g, (m, name: string | undefined) =>
    m === "$$" ? "$" : name !== undefined && name in env ? env[name]! : m,
  );
}

/**
 * A container's environment as the kubelet builds it: envFrom first, then env in order.
 * A reference to a Secret or ConfigMap the chart does not render must be in `external`
 * (supplied as a user would create it), else the test fails: the chart would not start.
 */
function containerEnv(
  c: Container,
  pod: { name: string; node: string },
  secrets: Map<string, Record<string, string>>,
  configMaps: Map<string, Record<string, string>>,
): Record<string, string> {
  const env: Record<string, string> = {};
  const lookup = (store: Map<string, Record<string, string>>, what: string, name: string, key?: string, optional = false) => {
    const data = store.get(name);
    if (data === undefined || (key !== undefined && !(key in data))) {
      if (optional) return undefined;
      throw new Error(`${c.name}: ${what} ${name}${key ? ` key ${key}` : ""} is neither rendered by the chart nor supplied`);
    }
    return key === undefined ? data : data[key];
  };
  for (const from of c.envFrom ?? []) {
    const ref = from.secretRef ?? from.configMapRef!;
    const data = lookup(from.secretRef ? secrets : configMaps, from.secretRef ? "Secret" : "ConfigMap", ref.name) as Record<string, string>;
    for (const [k, v] of Object.entries(data)) env[`${from.prefix ?? ""}${k}`] = v;
  }
  for (const e of c.env ?? []) {
    const vf = e.valueFrom;
    let value: string | undefined;
    if (vf === undefined) value = expand(e.value ?? "", env);
    else if (vf.secretKeyRef) {
      const r = vf.secretKeyRef;
      value = lookup(secrets, "Secret", r.name, r.key, r.optional) as string | undefined;
    } else if (vf.configMapKeyRef) {
      const r = vf.configMapKeyRef;
      value = lookup(configMaps, "ConfigMap", r.name, r.key, r.optional) as string | undefined;
    } else if (vf.fieldRef) {
      const field: Record<string, string> = { "metadata.name": pod.name, "metadata.namespace": NAMESPACE, "spec.nodeName": pod.node };
      value = field[vf.fieldRef.fieldPath];
      if (value === undefined) throw new Error(`${c.name}: ${e.name}: fieldRef ${vf.fieldRef.fieldPath} is not simulated`);
    } else throw new Error(`${c.name}: ${e.name}: unsupported valueFrom ${JSON.stringify(vf)}`);
    if (value !== undefined) env[e.name] = value;
  }
  return env;
}

/**
 * The rewrites, and why each. In a cluster these name Services (deai-postgresql, deai-nats,
 * deai-minio, deai-ledger) and the bundled servers' generated credentials; here the same roles
 * are played by the local Postgres (trust auth), the local NATS, an in-process S3 and the
 * ledger process this test started.
 *
 *   DATABASE_URL          -> a fresh database on 127.0.0.1:5432 (trust: no password)
 *   NATS_URL              -> nats://127.0.0.1:4222
 *   NATS_PREFIX           -> a unique prefix: the local NATS is shared with other tests (the
 *                            value exists for exactly this: installs sharing one NATS)
 *   S3_ENDPOINT, S3_ACCESS_KEY, S3_SECRET_KEY -> the in-process S3 standing in for MinIO
 *   INGESTION_PROVIDERS   -> each entry's endpoint/accessKey/secretKey -> that S3 (the chart's
 *                            development providers live on MinIO); ids, buckets, regions kept
 *   INGESTION_LEDGER_URL  -> http://127.0.0.1:<ledger port>
 *   PUBLIC_AUTHORITY      -> gains 127.0.0.1:<port>: clients here reach the service under that
 *                            name, not its Service names (which stay accepted)
 *
 * HOST, PORT, every key, origin, witness and timing setting are used as rendered (except
 * PORT of the second ledger replica of the HA case: a second pod has its own IP, a second
 * process here needs its own port).
 */
function rewrite(
  name: string,
  env: Record<string, string>,
  local: { db: TestDatabase; natsPrefix: string; s3: TestS3; ledgerUrl?: string },
): Record<string, string> {
  const out = { ...env };
  const set = (k: string, v: string) => {
    if (!(k in env)) throw new Error(`${name}: the chart renders no ${k} to rewrite`);
    out[k] = v;
  };
  set("DATABASE_URL", local.db.url);
  set("NATS_URL", natsUrl);
  set("NATS_PREFIX", local.natsPrefix);
  set("S3_ENDPOINT", local.s3.endpoint);
  set("S3_ACCESS_KEY", local.s3.accessKey);
  set("S3_SECRET_KEY", local.s3.secretKey);
  set("PUBLIC_AUTHORITY", `${env.PUBLIC_AUTHORITY},127.0.0.1:${env.PORT}`);
  if (name === "ingestion") {
    const providers = JSON.parse(env.INGESTION_PROVIDERS ?? "[]") as Record<string, unknown>[];
    set(
      "INGESTION_PROVIDERS",
      JSON.stringify(
        providers.map((p) => ({ ...p, endpoint: local.s3.endpoint, accessKey: local.s3.accessKey, secretKey: local.s3.secretKey })),
      ),
    );
    set("INGESTION_LEDGER_URL", local.ledgerUrl!);
  }
  return out;
}

/** A TCP port free right now on 127.0.0.1. */
async function freePort(): Promise<number> {
  const srv = createNetServer();
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
  const { port } = srv.address() as AddressInfo;
  await new Promise((r) => srv.close(r));
  return port;
}

async function waitReady(base: string, proc: ServiceProcess, timeoutMs = 90_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = "";
  while (Date.now() < deadline) {
    if (proc.proc.exitCode !== null) throw new Error(`${base} exited (${proc.proc.exitCode}) before ready`);
    try {
      const res = await fetch(`${base}/readyz`);
      last = `${res.status} ${await res.text()}`;
      if (res.status === 200) return;
    } catch (e) {
      last = (e as Error).message;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`${base}/readyz not 200 within ${timeoutMs} ms; last: ${last}`);
}

const cases: [string, string[]][] = [
  ["default", []],
  ["ha", ["charts/deai/ci/ha-values.yaml"]],
];

describe.each(cases)("chart environment (%s values)", (label, valueFiles) => {
  let db: TestDatabase;
  let s3: TestS3;
  const natsPrefix = uniqueNatsPrefix(`chart${label}`);
  const procs = new Map<string, ServiceProcess>();
  let objects: K8sObject[];
  let envs: Map<
    string,
    {
      main: Record<string, string>;
      migrate?: Record<string, string>;
      command: string[];
      replicas: number;
      graceSeconds: number;
      preStopSeconds: number;
    }
  >;
  let secrets: Map<string, Record<string, string>>;

  beforeAll(async () => {
    objects = await render(valueFiles);
    secrets = chartData(objects, "Secret");
    const configMaps = chartData(objects, "ConfigMap");
    envs = new Map();
    for (const d of objects.filter((o) => o.kind === "Deployment")) {
      const component = d.metadata.name.slice(`${RELEASE}-`.length);
      const pod = (
        d.spec!.template as {
          spec: {
            containers: (Container & { lifecycle?: { preStop?: { sleep?: { seconds: number } } } })[];
            initContainers?: Container[];
            terminationGracePeriodSeconds: number;
          };
        }
      ).spec;
      const podRef = { name: `${d.metadata.name}-0`, node: "node-0" };
      const main = pod.containers.find((c) => c.name === component)!;
      const migrate = pod.initContainers?.find((c) => c.name === "migrate");
      envs.set(component, {
        command: main.command,
        replicas: d.spec!.replicas as number,
        graceSeconds: pod.terminationGracePeriodSeconds,
        preStopSeconds: main.lifecycle?.preStop?.sleep?.seconds ?? 0,
        main: containerEnv(main, podRef, secrets, configMaps),
        ...(migrate ? { migrate: containerEnv(migrate, podRef, secrets, configMaps) } : {}),
      });
    }
    db = await createTestDatabase(`chart${label}`);
    s3 = await startS3({ buckets: [envs.get("ledger")!.main.S3_BUCKET!] });
  }, 120_000);

  afterAll(async () => {
    await Promise.all(
      [...procs.values()].map(async (p) => {
        if (p.proc.exitCode === null) p.kill("SIGKILL");
        await p.exited;
      }),
    );
    await s3?.destroy();
    await deleteNatsStreams(natsPrefix).catch(() => undefined);
    await db?.drop();
  });

  it("renders one Deployment per service, each with the downward-API resource attributes", () => {
    expect([...envs.keys()].sort()).toEqual([
      "da-sampler",
      "dashboard",
      "ingestion",
      "ledger",
      "marketplace",
      "slashing",
      "trainer-operator",
    ]);
    for (const [name, { main }] of envs) {
      expect(main.OTEL_RESOURCE_ATTRIBUTES).toContain(
        `k8s.pod.name=${RELEASE}-${name}-0,k8s.namespace.name=${NAMESPACE},k8s.node.name=node-0`,
      );
      expect(main.SHUTDOWN_DRAIN_MS).toBe("5000");
      expect(main.METRICS_ENABLED).toBe("true");
    }
    // One key for every replica: the chart generated it, nothing is left to the process.
    expect(envs.get("ledger")!.main.LEDGER_SIGNING_KEY).toMatch(/^PRIVATE\+KEY\+/);
    expect(envs.get("ingestion")!.main.INGESTION_SERVICE_KEY).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(envs.get("ingestion")!.main.INGESTION_LEDGER_LOG_KEY).toBe(secrets.get(`${RELEASE}-ledger-key`)!.LEDGER_VERIFIER_KEY);
    // Trainer workers get GPUs.
    const template = JSON.parse(envs.get("trainer-operator")!.main.TRAINER_POD_TEMPLATE!) as {
      resources: { limits: Record<string, string> };
    };
    expect(template.resources.limits["nvidia.com/gpu"]).toBe("1");
  });

  it("ledger: migrates, becomes ready, and an append gets a receipt signed by the chart's log key", async () => {
    const spec = envs.get("ledger")!;
    const local = { db, natsPrefix, s3 };
    if (spec.migrate)
      await run(process.execPath, [`${root}${spec.command[1]}`, "migrate"], {
        env: { PATH: process.env.PATH ?? "", ...rewrite("ledger", spec.migrate, local) },
      });
    const env = rewrite("ledger", spec.main, local);
    const p = await spawnService(`${root}${spec.command[1]}`, env, { timeoutMs: 90_000 });
    procs.set("ledger", p);
    expect(String(p.port)).toBe(env.PORT);
    const base = `http://127.0.0.1:${p.port}`;
    await waitReady(base, p);

    const author = generateActorKey();
    const e = envelope(statement([sha256Hex(`chart-${label}`)], "https://deai.dev/test/v1", { label }), [author]);
    const res = await signedFetch(`${base}/v1/ledger/entries`, author, { body: JSON.stringify({ envelope: e, waitForIntegration: true }) });
    const body = (await res.json()) as { integrated?: boolean; receipt?: { checkpoint: string; logOrigin: string } };
    expect(res.status).toBe(200);
    expect(body.integrated).toBe(true);
    const keys = secrets.get(`${RELEASE}-ledger-key`)!;
    expect(body.receipt!.logOrigin).toBe(keys.LEDGER_ORIGIN);
    // Verified against the verifier key the chart derived in Helm (not the one the process could derive).
    const opened = openCheckpoint(body.receipt!.checkpoint, { log: parseVerifierKey(keys.LEDGER_VERIFIER_KEY!) });
    expect(opened.checkpoint.size).toBeGreaterThanOrEqual(1);
  }, 180_000);

  it("ingestion: migrates, becomes ready, and an upload completes (anchored in the ledger)", async () => {
    const spec = envs.get("ingestion")!;
    const ledger = procs.get("ledger");
    if (!ledger) throw new Error("the ledger did not start");
    const local = { db, natsPrefix, s3, ledgerUrl: `http://127.0.0.1:${ledger.port}` };
    if (spec.migrate)
      await run(process.execPath, [`${root}${spec.command[1]}`, "migrate"], {
        env: { PATH: process.env.PATH ?? "", ...rewrite("ingestion", spec.migrate, local) },
      });
    const p = await spawnService(`${root}${spec.command[1]}`, rewrite("ingestion", spec.main, local), { timeoutMs: 90_000 });
    procs.set("ingestion", p);
    const base = `http://127.0.0.1:${p.port}`;
    await waitReady(base, p);

    const owner = generateActorKey();
    const { done } = await uploadAll(base, owner, bytesOf(60_000, label.length), { k: 4, m: 2, shardSize: 4096 });
    expect(done.upload.state).toBe("UPLOAD_STATE_COMPLETED");
    expect(done.datasetId).toMatch(/-/);
    // Anchored: its receipt is signed by the chart's log key (ingestion checked it too, with
    // INGESTION_LEDGER_LOG_KEY from the same Secret).
    const keys = secrets.get(`${RELEASE}-ledger-key`)!;
    expect(() => openCheckpoint(done.receipt.checkpoint as string, { log: parseVerifierKey(keys.LEDGER_VERIFIER_KEY!) })).not.toThrow();
  }, 180_000);

  it("every ledger replica signs with the one log key (a second replica on another local port)", async () => {
    const spec = envs.get("ledger")!;
    if (spec.replicas < 2) return; // the default values run one replica
    // A second pod would have its own IP; here it needs its own port (and accepts that name).
    const port = await freePort();
    const env = rewrite("ledger", { ...spec.main, PORT: String(port) }, { db, natsPrefix, s3 });
    const p = await spawnService(`${root}${spec.command[1]}`, env, { timeoutMs: 90_000 });
    procs.set("ledger-1", p);
    const base = `http://127.0.0.1:${p.port}`;
    await waitReady(base, p);
    const author = generateActorKey();
    const e = envelope(statement([sha256Hex(`chart-${label}-replica`)], "https://deai.dev/test/v1", {}), [author]);
    // Signed for the address used here (the rendered names stay accepted).
    const res = await signedFetch(`${base}/v1/ledger/entries`, author, { body: JSON.stringify({ envelope: e, waitForIntegration: true }) });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { integrated: boolean; receipt: { checkpoint: string } };
    expect(body.integrated).toBe(true);
    const keys = secrets.get(`${RELEASE}-ledger-key`)!;
    expect(() => openCheckpoint(body.receipt.checkpoint, { log: parseVerifierKey(keys.LEDGER_VERIFIER_KEY!) })).not.toThrow();
  }, 180_000);

  it("the other services migrate and become ready with exactly the chart's environment", async () => {
    const others = [...envs.keys()].filter((n) => n !== "ledger" && n !== "ingestion");
    await Promise.all(
      others.map(async (name) => {
        const spec = envs.get(name)!;
        const local = { db, natsPrefix, s3 };
        if (spec.migrate)
          await run(process.execPath, [`${root}${spec.command[1]}`, "migrate"], {
            env: { PATH: process.env.PATH ?? "", ...rewrite(name, spec.migrate, local) },
          });
        const p = await spawnService(`${root}${spec.command[1]}`, rewrite(name, spec.main, local), { timeoutMs: 90_000 });
        procs.set(name, p);
        await waitReady(`http://127.0.0.1:${p.port}`, p);
      }),
    );
    expect(others.every((n) => procs.has(n))).toBe(true);
  }, 180_000);

  it("on SIGTERM every service exits 0 within terminationGracePeriodSeconds minus its preStop delay", async () => {
    const results = await Promise.all(
      [...procs].map(async ([name, p]) => {
        const spec = envs.get(name.replace(/-\d+$/, ""))!;
        const budgetMs = (spec.graceSeconds - spec.preStopSeconds) * 1000;
        const started = Date.now();
        p.kill("SIGTERM");
        const code = await Promise.race([p.exited, new Promise<string>((r) => setTimeout(() => r("timeout"), budgetMs))]);
        return { name, code, ms: Date.now() - started, budgetMs };
      }),
    );
    expect(results.length).toBeGreaterThanOrEqual(6);
    for (const r of results) expect({ name: r.name, code: r.code }).toEqual({ name: r.name, code: 0 });
    for (const r of results) expect(r.ms).toBeLessThan(r.budgetMs);
  }, 120_000);
});
