// The only module with side effects: config → telemetry → deps → server → shutdown, plus the
// `keygen`, `fsck`, `witness-keygen` and `witness` commands (`migrate` is the kit's).
import { openDatabase, runMain, schemaOf } from "@deai/kit";
import { COSIGNATURE_V1_TYPE, generateNoteKey, parseVerifierKey } from "@deai/proofs";

import { fsck } from "./app/fsck.js";
import { runWitness, witnessKeys } from "./app/witness.js";
import { loadLedgerConfig } from "./config.js";
import { ledgerDefinition, logVerifier } from "./definition.js";
import type { LedgerDb } from "./store/tables.js";

const [command, arg] = process.argv.slice(2);

if (command === "keygen") {
  // The origin is the key name: `main.js keygen [origin]`, else LEDGER_ORIGIN.
  const origin = arg ?? loadLedgerConfig({ ...process.env, LEDGER_SIGNING_KEY: undefined }).LEDGER_ORIGIN;
  const { signerKey, verifierKey } = generateNoteKey(origin);
  process.stdout.write(
    `LEDGER_ORIGIN=${origin}\nLEDGER_SIGNING_KEY=${signerKey}\n# verifier key (publish it; clients pin it):\n${verifierKey}\n`,
  );
} else if (command === "witness-keygen") {
  if (arg === undefined) throw new Error("usage: main.js witness-keygen <witness name>");
  const { signerKey, verifierKey } = generateNoteKey(arg, { type: COSIGNATURE_V1_TYPE });
  process.stdout.write(
    `WITNESS_KEY=${signerKey}\n# verifier key (add it to the log's LEDGER_WITNESS_KEYS):\n${verifierKey}\n# actor id (signs AddCosignature): ${witnessKeys(signerKey).actor.id}\n`,
  );
} else if (command === "witness") {
  const stop = new AbortController();
  for (const s of ["SIGTERM", "SIGINT"] as const) process.once(s, () => stop.abort());
  process.exitCode = await runWitness(process.argv.slice(3), stop.signal);
} else if (command === "fsck") {
  const config = loadLedgerConfig();
  // The verifier comes from `fsck <verifier key>` or is derived from the signing key.
  const verifier = arg !== undefined ? parseVerifierKey(arg) : logVerifier(config);
  if (!verifier) throw new Error("fsck needs the log's verifier key (argument) or LEDGER_SIGNING_KEY");
  const database = openDatabase<LedgerDb>({ url: config.DATABASE_URL, schema: schemaOf("ledger") });
  try {
    const report = await fsck(database.db, verifier, config.LEDGER_ORIGIN);
    process.stdout.write(JSON.stringify({ ...report, ok: report.problems.length === 0 }) + "\n");
    process.exitCode = report.problems.length === 0 ? 0 : 1;
  } finally {
    await database.close();
  }
} else {
  const config = loadLedgerConfig();
  await runMain(ledgerDefinition(config), config);
}
