// The kit's abuse suite against the ingestion contract, on the built service process with
// real storage providers (s3rver) and the real ledger, around one anchored dataset so the
// reads have something to find.
import type { JsonObject } from "@bufbuild/protobuf";

import { IngestionService } from "@deai/contracts/deai/ingestion/v1/ingestion_pb";
import { generateActorKey } from "@deai/kit";
import { ABUSE_SERVER_LIMITS, processTarget, runAbuseSuite, spawnService, validGet } from "@deai/testkit";

import { bytesOf, ingestionMain, startHarness, uploadAll } from "./harness.js";

const owner = generateActorKey();
let seeds: Record<string, JsonObject> = {};
let datasetId = "";

runAbuseSuite({
  name: "ingestion",
  services: [IngestionService],
  start: async () => {
    const h = await startHarness("ingestion-abuse", 3);
    try {
      const service = await spawnService(
        ingestionMain,
        h.env.vars({ ...ABUSE_SERVER_LIMITS.env, INGESTION_PROVIDERS: h.providersJson(), INGESTION_LEDGER_URL: h.ledgerUrl }),
      );
      const base = `http://127.0.0.1:${service.port}`;
      const { uploadId, done } = await uploadAll(base, owner, bytesOf(50_000, 3), { k: 2, m: 1 });
      datasetId = done.datasetId as string;
      const spec = { name: "abuse", k: 2, m: 1, shardSize: 4096, size: "1000" };
      seeds = {
        CreateUpload: { spec },
        GetUpload: { uploadId },
        CompleteUpload: { uploadId },
        AbortUpload: { uploadId },
        GetDataset: { datasetId },
        ListDatasets: { owner: owner.id },
        DownloadDataset: { datasetId },
        GetShardProof: { datasetId, stripe: "0", slot: 0 },
      };
      return processTarget({ service, databaseUrl: h.env.database.url, schema: "ingestion", close: () => h.close() });
    } catch (e) {
      await h.close();
      throw e;
    }
  },
  seeds: () => seeds,
  validRequests: [
    { name: "GET /v1/datasets/{id}", run: (base) => validGet(`/v1/datasets/${datasetId}`).run(base) },
    validGet(`/v1/datasets?owner=${owner.id}`),
  ],
});
