#!/usr/bin/env node
// deai: the DeAI OS command line. Parses arguments (node:util parseArgs), runs one command,
// and maps failures to exit codes: 0 ok, 1 failed (a check, the server, a file), 2 usage.
import { parseArgs } from "node:util";

import { CheckFailed, UsageError, type Context } from "./cli.js";
import { da } from "./commands/da.js";
import { dataset } from "./commands/dataset.js";
import { keygen } from "./commands/keygen.js";
import { ledger } from "./commands/ledger.js";
import { market } from "./commands/market.js";
import { slash } from "./commands/slash.js";
import { verify } from "./commands/verify.js";

const USAGE = `usage: deai [--server URL] [--json] <command>

  keygen [--out FILE]                      new actor key file {"actor","seed"} (stdout without --out)
  ledger append --key FILE --statement FILE.json [--wait] [--timeout-ms N] [--receipt-out FILE] [--entry-out FILE]
                                           sign an in-toto Statement v1 into a DSSE envelope and append it;
                                           prints the index, with --wait the tlog-proof receipt
  ledger get <index> | --leaf-hash HEX [--receipt] [--receipt-out FILE] [--entry-out FILE]
  ledger prove <index> | --leaf-hash HEX [--size N] [--receipt-out FILE]
                                           inclusion proof as a tlog-proof receipt
  ledger prove --consistency A B           consistency proof between tree sizes A and B
  ledger checkpoint                        the published checkpoint (signed note)
  ledger lineage <alg:hex> [--direction ancestors|descendants|both] [--depth N]
  verify <receipt> --log-key KEY (--entry FILE | --leaf-hash HEX) [--witness-key KEY ...] [--witnesses-required K]
                                           offline check of a tlog-proof receipt; KEY is verifier key text or a file

  dataset upload <FILE|-> --key FILE [--name N] [--media-type T] [--license SPDX] [--usage-terms T]
                 [--parent SHA256HEX ...] [--provenance KEY=VALUE ...] [--k 8] [--m 4] [--shard-size 262144]
                 [--resume UPLOAD_ID] [--segment-mib 64] [--retries 6] [--check-shard-root] [--log-key KEY]
                 [--receipt-out FILE] [--envelope-out FILE]
                                           hash, stream in signed segments (resumed after failures), check and
                                           sign the manifest, anchor it; prints the dataset and its receipt
  dataset download <DATASET_ID> [-o FILE|-] [--range FIRST-LAST] [--retries 6]
                                           a full download must hash to the signed manifest's contentDigest;
                                           a range's shards are checked against the signed shardRoot
  dataset show <DATASET_ID|SHA256HEX> [--log-key KEY] [--receipt-out FILE] [--envelope-out FILE]
  dataset verify <FILE> (--dataset ID | --envelope FILE.json --receipt FILE) --log-key KEY [--witness-key KEY ...]
                                           the file against its owner-signed manifest and ledger receipt,
                                           trusting no service: signature, statement, receipt, size,
                                           contentDigest, shardRoot recomputed from the file

  da status [--provider ID]                policy in force; a provider's availability, reputation and slots
  da sample <DATASET_ID> --key FILE [--slot N] [--stripe N ...] [--samples N]
                                           signed on-demand challenge; a failure starts the quorum re-check
  da attestations [--provider ID] [--dataset ID] [--evidence] [--sampler ID ... [--quorum 2]]
                                           list attestations; with --sampler each is verified offline
  da reputation <PROVIDER> --ledger URL --sampler ID ... [--quorum 2] [--lambda 0.999] [--log-key KEY] [--compare]
                                           Beta reputation recomputed from the ledger's public entries (checked
                                           against its checkpoint); --compare fails unless the service agrees

  slash verify <BUNDLE|RECEIPT> --log-key KEY --service-key ID [--council ID ... --veto-threshold K]
               [--record FILE | --receipt FILE] [--unanchored]
                                           offline: the slash record's signature by the pinned service key,
                                           its evidence re-verified (every signature), the penalty recomputed,
                                           a veto's k-of-n pinned council, and its ledger receipt
                                           (an actor id starting with "-" goes as --service-key=ID, --council=ID)
  slash list [--provider ID] [--records-dir DIR]
                                           the service's slashes; each signed record written as a bundle file

  market offer --key FILE --gpu CLASS --gpus-per-node N --nodes N --region R --price P [--bandwidth-mbps N] [--name NAME]
                                           a GPU offer (CLASS: a catalog id, e.g. nvidia-h100-80g-sxm5; P: base units
                                           per GPU-hour); --name registers the key as a GPU provider first
  market order --key FILE --gpu CLASS --gpus-per-group N [--groups N] --max-price P --hours H [--region R ...]
               [--min-bandwidth-mbps N] [--distinct-providers] [--idempotency-key K] [--deposit AMOUNT]
                                           a gang order, matched at once; prints the matches or why nothing matches
  market status <ORDER_ID>                 the order, its matches or the shortfall per dimension, escrow and leases
  market leases [--order ID] [--provider ID] [--tenant ID]
  market cancel <ORDER_ID> --key FILE --reason TEXT
                                           cancel: reservation and leases released, holds not begun voided
  (market commands: --currency C, default DEAI)

  --server URL   service URL (default: ledger $DEAI_LEDGER_URL or http://127.0.0.1:7101;
                 dataset commands $DEAI_INGESTION_URL or http://127.0.0.1:7102;
                 da commands $DEAI_DA_URL or http://127.0.0.1:7103;
                 market commands $DEAI_MARKETPLACE_URL or http://127.0.0.1:7104;
                 slash commands $DEAI_SLASHING_URL or http://127.0.0.1:7105)
  --json         one JSON document on stdout, for scripts
exit status: 0 ok, 1 failed (verification, server or file error), 2 usage error`;

const OPTIONS = {
  server: { type: "string" },
  json: { type: "boolean" },
  help: { type: "boolean", short: "h" },
  out: { type: "string", short: "o" },
  key: { type: "string" },
  statement: { type: "string" },
  wait: { type: "boolean" },
  "timeout-ms": { type: "string" },
  "receipt-out": { type: "string" },
  "entry-out": { type: "string" },
  "leaf-hash": { type: "string" },
  receipt: { type: "boolean" },
  size: { type: "string" },
  consistency: { type: "boolean" },
  direction: { type: "string" },
  depth: { type: "string" },
  "log-key": { type: "string" },
  entry: { type: "string" },
  "witness-key": { type: "string", multiple: true },
  "witnesses-required": { type: "string" },
  name: { type: "string" },
  "media-type": { type: "string" },
  license: { type: "string" },
  "usage-terms": { type: "string" },
  parent: { type: "string", multiple: true },
  provenance: { type: "string", multiple: true },
  k: { type: "string" },
  m: { type: "string" },
  "shard-size": { type: "string" },
  resume: { type: "string" },
  "segment-mib": { type: "string" },
  "check-shard-root": { type: "boolean" },
  "envelope-out": { type: "string" },
  range: { type: "string" },
  dataset: { type: "string" },
  envelope: { type: "string" },
  retries: { type: "string" },
  provider: { type: "string" },
  slot: { type: "string" },
  stripe: { type: "string", multiple: true },
  samples: { type: "string" },
  evidence: { type: "boolean" },
  sampler: { type: "string", multiple: true },
  quorum: { type: "string" },
  lambda: { type: "string" },
  ledger: { type: "string" },
  compare: { type: "boolean" },
  record: { type: "string" },
  "service-key": { type: "string" },
  council: { type: "string", multiple: true },
  "veto-threshold": { type: "string" },
  unanchored: { type: "boolean" },
  "records-dir": { type: "string" },
  gpu: { type: "string" },
  "gpus-per-node": { type: "string" },
  nodes: { type: "string" },
  region: { type: "string", multiple: true },
  price: { type: "string" },
  "bandwidth-mbps": { type: "string" },
  currency: { type: "string" },
  "gpus-per-group": { type: "string" },
  groups: { type: "string" },
  "max-price": { type: "string" },
  hours: { type: "string" },
  "min-bandwidth-mbps": { type: "string" },
  "distinct-providers": { type: "boolean" },
  "idempotency-key": { type: "string" },
  deposit: { type: "string" },
  order: { type: "string" },
  tenant: { type: "string" },
  reason: { type: "string" },
} as const;

/** The dataset commands' options: there `--receipt` names a receipt file (ledger get's is a flag). */
const DATASET_OPTIONS = { ...OPTIONS, receipt: { type: "string" } } as const;

/** Options each command accepts, besides --server, --json and --help. */
const ALLOWED: Record<string, readonly (keyof typeof DATASET_OPTIONS)[]> = {
  keygen: ["out"],
  "ledger append": ["key", "statement", "wait", "timeout-ms", "receipt-out", "entry-out"],
  "ledger get": ["leaf-hash", "receipt", "receipt-out", "entry-out"],
  "ledger prove": ["leaf-hash", "size", "consistency", "receipt-out"],
  "ledger checkpoint": [],
  "ledger lineage": ["direction", "depth"],
  verify: ["log-key", "entry", "leaf-hash", "witness-key", "witnesses-required"],
  "dataset upload": [
    "key",
    "name",
    "media-type",
    "license",
    "usage-terms",
    "parent",
    "provenance",
    "k",
    "m",
    "shard-size",
    "resume",
    "segment-mib",
    "retries",
    "check-shard-root",
    "log-key",
    "receipt-out",
    "envelope-out",
  ],
  "dataset download": ["out", "range", "retries"],
  "dataset show": ["log-key", "receipt-out", "envelope-out"],
  "dataset verify": ["dataset", "envelope", "receipt", "log-key", "witness-key", "witnesses-required"],
  "da status": ["provider"],
  "da sample": ["key", "slot", "stripe", "samples"],
  "da attestations": ["provider", "dataset", "evidence", "sampler", "quorum"],
  "da reputation": ["ledger", "sampler", "quorum", "lambda", "log-key", "compare"],
  "slash verify": ["log-key", "record", "receipt", "service-key", "council", "veto-threshold", "unanchored"],
  "slash list": ["provider", "records-dir"],
  "market offer": ["key", "gpu", "gpus-per-node", "nodes", "region", "price", "bandwidth-mbps", "name", "currency"],
  "market order": [
    "key",
    "gpu",
    "gpus-per-group",
    "groups",
    "max-price",
    "hours",
    "region",
    "min-bandwidth-mbps",
    "distinct-providers",
    "idempotency-key",
    "deposit",
    "currency",
  ],
  "market status": [],
  "market leases": ["order", "provider", "tenant"],
  "market cancel": ["key", "reason"],
};

async function main(argv: readonly string[]): Promise<number> {
  let json = argv.includes("--json");
  const fail = (message: string, detail?: Record<string, unknown>): void => {
    process.stderr.write(`deai: ${message}\n`);
    if (json) process.stdout.write(JSON.stringify({ ok: false, error: message, ...detail }) + "\n");
  };
  try {
    // Which command it is decides how its options parse.
    const first = parseArgs({ args: [...argv], options: OPTIONS, allowPositionals: true, strict: false }).positionals[0];
    const options = first === "dataset" || first === "slash" ? DATASET_OPTIONS : OPTIONS;
    const { values, positionals } = parseArgs({ args: [...argv], options, allowPositionals: true, strict: true });
    json = values.json === true;
    if (values.help || positionals.length === 0) {
      process.stdout.write(USAGE + "\n");
      return values.help ? 0 : 2;
    }
    const [command, ...rest] = positionals;
    const name =
      command === "ledger" || command === "dataset" || command === "da" || command === "slash" || command === "market"
        ? `${command} ${rest[0] ?? ""}`
        : command!;
    const allowed = ALLOWED[name];
    if (allowed === undefined) throw new UsageError(`unknown command ${JSON.stringify(name.trim())}`);
    for (const k of Object.keys(values)) {
      if (!["server", "json", "help", ...(allowed as readonly string[])].includes(k)) throw new UsageError(`${name} does not take --${k}`);
    }
    const defaultServer =
      command === "dataset"
        ? (process.env.DEAI_INGESTION_URL ?? "http://127.0.0.1:7102")
        : command === "da"
          ? (process.env.DEAI_DA_URL ?? "http://127.0.0.1:7103")
          : command === "slash"
            ? (process.env.DEAI_SLASHING_URL ?? "http://127.0.0.1:7105")
            : command === "market"
              ? (process.env.DEAI_MARKETPLACE_URL ?? "http://127.0.0.1:7104")
              : (process.env.DEAI_LEDGER_URL ?? "http://127.0.0.1:7101");
    const ctx: Context = {
      server: values.server ?? defaultServer,
      json,
      values,
      positionals: rest,
      say: (line) => void (json ? undefined : process.stdout.write(line + "\n")),
      emit: (value) => void (json ? process.stdout.write(JSON.stringify(value, null, 2) + "\n") : undefined),
      warn: (line) => void process.stderr.write(line + "\n"),
    };
    if (command === "keygen") await keygen(ctx);
    else if (command === "ledger") await ledger(ctx);
    else if (command === "dataset") await dataset(ctx);
    else if (command === "da") await da(ctx);
    else if (command === "slash") await slash(ctx);
    else if (command === "market") await market(ctx);
    else await verify(ctx);
    return 0;
  } catch (e) {
    if (e instanceof UsageError || (e as { code?: string }).code?.startsWith("ERR_PARSE_ARGS")) {
      fail(`${(e as Error).message}\n\n${USAGE}`);
      return 2;
    }
    fail((e as Error).message, e instanceof CheckFailed ? e.detail : undefined);
    return 1;
  }
}

process.exitCode = await main(process.argv.slice(2));
