// deai dataset upload|download|show|verify: the ingestion service's REST API, and offline
// verification of a file against its owner-signed manifest and ledger receipt.
import { ApiClient } from "../api-client.js";
import { str, UsageError, verifierKeyArg, type Context } from "../cli.js";
import type { DatasetJson } from "../dataset-api.js";
import { download } from "./dataset-download.js";
import { reportDataset } from "./dataset-report.js";
import { upload } from "./dataset-upload.js";
import { verifyDataset } from "./dataset-verify.js";

/** deai dataset show <datasetId | sha256 hex> */
async function show(ctx: Context, client: ApiClient): Promise<void> {
  const [which, ...rest] = ctx.positionals;
  if (which === undefined || rest.length > 0) throw new UsageError("dataset show takes a dataset id or a contentDigest (64 hex digits)");
  const hex = which.replace(/^sha256:/, "");
  const path = /^[0-9a-fA-F]{64}$/.test(hex) ? `/v1/datasets/by-digest/${hex.toLowerCase()}` : `/v1/datasets/${encodeURIComponent(which)}`;
  const { dataset } = await client.getJson<{ dataset: DatasetJson }>(path);
  const logKey = str(ctx, "log-key");
  await reportDataset(ctx, dataset, { log: logKey === undefined ? undefined : verifierKeyArg(logKey, "--log-key") });
}

export const DATASET_COMMANDS = { upload, download, show, verify: verifyDataset } as const;

export async function dataset(ctx: Context): Promise<void> {
  const [sub, ...positionals] = ctx.positionals;
  const run = sub === undefined ? undefined : DATASET_COMMANDS[sub as keyof typeof DATASET_COMMANDS];
  if (!run) throw new UsageError(`unknown dataset command ${JSON.stringify(sub ?? "")}`);
  await run({ ...ctx, positionals }, new ApiClient(ctx.server, "the ingestion service"));
}
