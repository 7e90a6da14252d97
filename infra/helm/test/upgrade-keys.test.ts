// Keys generated once: the chart's `lookup` of its live Secrets, exercised against a minimal
// fake Kubernetes API (discovery plus GET of Secrets from an in-memory store) with
// `helm template --dry-run=server`, the mode in which Helm performs lookups as on install and
// upgrade. An install generates the log key, the service key and the passwords; an upgrade
// against the stored Secrets renders them byte for byte unchanged; a rotated key in the live
// Secret is kept; a changed origin fails the upgrade instead of silently re-keying.
import { execFile } from "node:child_process";
import { writeFile, mkdtemp, rm } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";

import { generateNoteKey } from "@deai/proofs";
import { parseAllDocuments } from "yaml";

const run = promisify(execFile);
const root = new URL("../../../", import.meta.url).pathname;
const NAMESPACE = "deai";

/** group/version -> [resource, Kind, namespaced] the chart renders. */
const RESOURCES: Record<string, [string, string, boolean][]> = {
  v1: [
    ["secrets", "Secret", true],
    ["services", "Service", true],
    ["serviceaccounts", "ServiceAccount", true],
    ["configmaps", "ConfigMap", true],
  ],
  "apps/v1": [
    ["deployments", "Deployment", true],
    ["statefulsets", "StatefulSet", true],
  ],
  "policy/v1": [["poddisruptionbudgets", "PodDisruptionBudget", true]],
  "networking.k8s.io/v1": [["networkpolicies", "NetworkPolicy", true]],
  "rbac.authorization.k8s.io/v1": [
    ["clusterroles", "ClusterRole", false],
    ["clusterrolebindings", "ClusterRoleBinding", false],
  ],
  "apiextensions.k8s.io/v1": [["customresourcedefinitions", "CustomResourceDefinition", false]],
  "monitoring.coreos.com/v1": [["servicemonitors", "ServiceMonitor", true]],
};

interface Secret {
  metadata: { name: string };
  data: Record<string, string>;
}

const secrets = new Map<string, Secret>();
let server: Server;
let dir: string;
let kubeconfig: string;

function startFakeApi(): Promise<Server> {
  const s = createServer((req, res) => {
    const path = (req.url ?? "").split("?")[0]!;
    const json = (code: number, body: unknown) => {
      res.writeHead(code, { "content-type": "application/json" });
      res.end(JSON.stringify(body));
    };
    const resourceList = (gv: string) => ({
      kind: "APIResourceList",
      apiVersion: "v1",
      groupVersion: gv,
      resources: RESOURCES[gv]!.map(([name, kind, namespaced]) => ({
        name,
        singularName: "",
        namespaced,
        kind,
        verbs: ["get", "list", "create"],
      })),
    });
    if (path === "/version") return json(200, { major: "1", minor: "31", gitVersion: "v1.31.0" });
    if (path === "/api") return json(200, { kind: "APIVersions", versions: ["v1"], serverAddressByClientCIDRs: [] });
    if (path === "/api/v1") return json(200, resourceList("v1"));
    if (path === "/apis") {
      const groups = Object.keys(RESOURCES)
        .filter((gv) => gv.includes("/"))
        .map((gv) => {
          const [group, version] = gv.split("/") as [string, string];
          const v = { groupVersion: gv, version };
          return { name: group, versions: [v], preferredVersion: v };
        });
      return json(200, { kind: "APIGroupList", apiVersion: "v1", groups });
    }
    const gv = /^\/apis\/([^/]+\/[^/]+)$/.exec(path);
    if (gv && RESOURCES[gv[1]!]) return json(200, resourceList(gv[1]!));
    const secret = new RegExp(`^/api/v1/namespaces/${NAMESPACE}/secrets/([^/]+)$`).exec(path);
    if (secret && req.method === "GET" && secrets.has(secret[1]!)) {
      // As Helm left it on install: owned by the release (what lets an upgrade or a reinstall adopt it).
      const { metadata, data } = secrets.get(secret[1]!)!;
      return json(200, {
        apiVersion: "v1",
        kind: "Secret",
        type: "Opaque",
        metadata: {
          ...metadata,
          namespace: NAMESPACE,
          labels: { "app.kubernetes.io/managed-by": "Helm" },
          annotations: {
            "meta.helm.sh/release-name": "deai",
            "meta.helm.sh/release-namespace": NAMESPACE,
            "helm.sh/resource-policy": "keep",
          },
        },
        data,
      });
    }
    json(404, { kind: "Status", apiVersion: "v1", status: "Failure", reason: "NotFound", code: 404, message: `${path} not found` });
  });
  return new Promise((resolve) => s.listen(0, "127.0.0.1", () => resolve(s)));
}

/** `helm template --dry-run=server` against the fake API: Helm looks the Secrets up as on install/upgrade. */
async function render(set: string[] = []): Promise<Map<string, Secret>> {
  const { stdout: helm } = await run("bash", [`${root}infra/helm/helm.sh`]);
  const args = ["template", "deai", `${root}charts/deai`, "--namespace", NAMESPACE, "--dry-run=server", "--disable-openapi-validation"];
  for (const s of set) args.push("--set", s);
  const { stdout } = await run(helm.trim(), args, { env: { ...process.env, KUBECONFIG: kubeconfig }, maxBuffer: 64 * 1024 * 1024 });
  const out = new Map<string, Secret>();
  for (const d of parseAllDocuments(stdout)) {
    const o = d.toJS() as (Secret & { kind: string }) | null;
    if (o?.kind === "Secret") out.set(o.metadata.name, { metadata: { name: o.metadata.name }, data: o.data });
  }
  return out;
}

const decoded = (s: Secret | undefined, key: string) => Buffer.from(s!.data[key]!, "base64").toString("utf8");

beforeAll(async () => {
  server = await startFakeApi();
  dir = await mkdtemp(join(tmpdir(), "deai-kubeconfig-"));
  kubeconfig = join(dir, "config");
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  await writeFile(
    kubeconfig,
    `apiVersion: v1\nkind: Config\nclusters: [{name: fake, cluster: {server: "${url}"}}]\nusers: [{name: u, user: {}}]\ncontexts: [{name: c, context: {cluster: fake, user: u, namespace: ${NAMESPACE}}}]\ncurrent-context: c\n`,
  );
});

afterAll(async () => {
  await new Promise((r) => server?.close(r));
  if (dir) await rm(dir, { recursive: true, force: true });
});

beforeEach(() => secrets.clear());

it("an install generates the keys; an upgrade renders the live Secrets unchanged", async () => {
  const installed = await render();
  const names = ["deai-ledger-key", "deai-service-keys", "deai-secrets"];
  expect(names.filter((n) => !installed.has(n))).toEqual([]);
  expect(decoded(installed.get("deai-ledger-key"), "LEDGER_SIGNING_KEY")).toMatch(
    /^PRIVATE\+KEY\+deai\.deai\.deai\.local\/log\+[0-9a-f]{8}\+/,
  );

  // Without live Secrets every render is a fresh install: new keys (so the equality below means something).
  const other = await render();
  expect(other.get("deai-ledger-key")!.data.LEDGER_SIGNING_KEY).not.toBe(installed.get("deai-ledger-key")!.data.LEDGER_SIGNING_KEY);
  expect(other.get("deai-service-keys")!.data.INGESTION_SERVICE_KEY).not.toBe(
    installed.get("deai-service-keys")!.data.INGESTION_SERVICE_KEY,
  );

  for (const n of names) secrets.set(n, installed.get(n)!);
  const upgraded = await render();
  for (const n of names) expect(upgraded.get(n)!.data).toEqual(installed.get(n)!.data);
  // …and again: stable across any number of upgrades.
  const again = await render(["config.logLevel=debug"]);
  for (const n of names) expect(again.get(n)!.data).toEqual(installed.get(n)!.data);
});

it("a key rotated in the live Secret is kept by later upgrades", async () => {
  const installed = await render();
  const origin = decoded(installed.get("deai-ledger-key"), "LEDGER_ORIGIN");
  const rotated = generateNoteKey(origin);
  const b64 = (s: string) => Buffer.from(s).toString("base64");
  secrets.set("deai-ledger-key", {
    metadata: { name: "deai-ledger-key" },
    data: { LEDGER_ORIGIN: b64(origin), LEDGER_SIGNING_KEY: b64(rotated.signerKey), LEDGER_VERIFIER_KEY: b64(rotated.verifierKey) },
  });
  const upgraded = await render();
  expect(decoded(upgraded.get("deai-ledger-key"), "LEDGER_SIGNING_KEY")).toBe(rotated.signerKey);
  expect(decoded(upgraded.get("deai-ledger-key"), "LEDGER_VERIFIER_KEY")).toBe(rotated.verifierKey);
});

it("a changed origin fails the upgrade instead of re-keying the log", async () => {
  const installed = await render();
  secrets.set("deai-ledger-key", installed.get("deai-ledger-key")!);
  await expect(render(["components.ledger.origin=ledger.example.com/other"])).rejects.toThrow(
    /components\.ledger\.origin is "ledger\.example\.com\/other" but Secret deai-ledger-key holds the log key of origin "deai\.deai\.deai\.local\/log"/,
  );
});
