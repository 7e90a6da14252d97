// Ingestion's metrics (METRICS.md): bytes received and served, live uploads, stripes rebuilt
// from parity, recorded into the kit's test metric reader (installed before the service starts).
import { generateActorKey, startService, type RunningService } from "@deai/kit";
import { installTestMetricReader, metricPoints } from "@deai/testkit";

import { loadIngestionConfig } from "../src/config.js";
import { ingestionDefinition } from "../src/definition.js";
import type { IngestionDb } from "../src/store/tables.js";
import { bytesOf, call, startHarness, uploadAll, type Harness } from "./harness.js";

const owner = generateActorKey();
let h: Harness;
let svc: RunningService<IngestionDb>;
let base: string;

beforeAll(async () => {
  installTestMetricReader();
  h = await startHarness("ingestion-metrics", 6);
  const config = loadIngestionConfig(h.env.vars({ INGESTION_PROVIDERS: h.providersJson(), INGESTION_LEDGER_URL: h.ledgerUrl }));
  svc = await startService(ingestionDefinition(config), config);
  base = `http://127.0.0.1:${svc.port}`;
}, 120_000);

afterAll(async () => {
  await svc?.stop();
  await h?.close();
});

async function total(name: string): Promise<number> {
  return (await metricPoints(name)).reduce((sum, p) => sum + Number(p.value), 0);
}

it("counts bytes received and served, live uploads and reconstructed stripes", async () => {
  const data = bytesOf(300_000, 4);
  const received0 = await total("deai.ingestion.received");
  const { done } = await uploadAll(base, owner, data);
  expect((await total("deai.ingestion.received")) - received0).toBe(data.length);

  const served0 = await total("deai.ingestion.served");
  const res = await fetch(`${base}/v1/datasets/${done.datasetId}/content`);
  expect(Buffer.from(await res.arrayBuffer()).equals(data)).toBe(true);
  expect((await total("deai.ingestion.served")) - served0).toBe(data.length);

  // A data slot's provider down: every stripe of the read is rebuilt from parity.
  const rebuilt0 = await total("deai.ingestion.reconstructions");
  const slot0 = Number(done.manifest.placements[0].providerId.slice(1));
  await h.providers[slot0]!.stop();
  try {
    const again = await fetch(`${base}/v1/datasets/${done.datasetId}/content`);
    expect(Buffer.from(await again.arrayBuffer()).equals(data)).toBe(true);
  } finally {
    await h.providers[slot0]!.start();
  }
  expect((await total("deai.ingestion.reconstructions")) - rebuilt0).toBe(Number(done.manifest.stripes));

  const active0 = await total("deai.ingestion.active_uploads");
  const c = await call(base, owner, "POST", "/v1/uploads", { spec: { name: "live", k: 4, m: 2, shardSize: 4096 } });
  expect(await total("deai.ingestion.active_uploads")).toBe(active0 + 1);
  await call(base, owner, "POST", `/v1/uploads/${c.json.upload.uploadId}/abort`, {});
  expect(await total("deai.ingestion.active_uploads")).toBe(active0);
}, 90_000);
