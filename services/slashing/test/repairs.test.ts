// deai.da.repair_completed on real NATS JetStream: a repair signed by a known sampler is recorded
// once for every slot it moved (the repair share of a slash for that slot then goes to it); one
// signed by a stranger, or with a signature that does not verify, records nothing.
import { randomBytes } from "node:crypto";

import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { sql } from "kysely";

import { RepairCompletedSchema } from "@deai/contracts/deai/events/v1/da_pb";
import { createLogger, EventBus, ManualClock, migrate, openDatabase, type Database } from "@deai/kit";
import { dsseSign, IN_TOTO_PAYLOAD_TYPE, type DsseSigner } from "@deai/proofs";
import { createTestDatabase, natsUrl, uniqueNatsPrefix, type TestDatabase } from "@deai/testkit";

import { Slashing } from "../src/app/slashing.js";
import { consumeRepairs } from "../src/events/repairs.js";
import { migrations } from "../src/store/migrations.js";
import { newSigner, newWorld } from "./evidence-factory.js";
import { openParams } from "./params.js";

let tdb: TestDatabase;
let database: Database<unknown>;
let bus: EventBus;
const w = newWorld();

beforeAll(async () => {
  tdb = await createTestDatabase("slashing-repairs");
  database = openDatabase<unknown>({ url: tdb.url, schema: "slashing" });
  await migrate(database, migrations);
  const clock = new ManualClock(new Date("2026-03-01T00:00:00Z"));
  const app = new Slashing(database.db as never, clock, openParams(w.trust), new Uint8Array(randomBytes(32)));
  await app.init();
  const logger = createLogger({ service: "t", level: "silent" });
  bus = await EventBus.connect({ url: natsUrl, prefix: uniqueNatsPrefix("slrep"), name: "t", logger });
  await consumeRepairs({ bus, db: database.db as never, clock, logger, app, samplers: w.trust.samplers });
});
afterAll(async () => {
  await bus?.close();
  await database?.close();
  await tdb?.drop();
});

async function publish(id: string, by: DsseSigner, slots: number[], tamper = false): Promise<void> {
  const env = dsseSign(IN_TOTO_PAYLOAD_TYPE, new TextEncoder().encode(`{"placement":"${id}"}`), [by]);
  const payload = tamper ? new TextEncoder().encode(`{"placement":"${id}!"}`) : env.payload;
  await bus.publish(
    "deai.da.repair_completed",
    RepairCompletedSchema,
    create(RepairCompletedSchema, {
      eventId: `da/repair/${id}`,
      occurredAt: timestampFromDate(new Date("2026-03-01T01:00:00Z")),
      datasetId: id,
      slot: slots[0]!,
      ledgerIndex: 5n,
      envelope: { payloadType: env.payloadType, payload, signatures: env.signatures.map((s) => ({ keyid: s.keyid, sig: s.sig })) },
      repaired: slots.map((slot) => ({ slot, previousProviderId: "p1", reason: "unavailable" })),
    }),
    `da/repair/${id}`,
  );
}

const repairs = async () =>
  (
    await sql<{
      dataset_id: string;
      slot: number;
      repairer: string;
    }>`select dataset_id, slot, repairer from repairs order by dataset_id, slot`.execute(database.db)
  ).rows;

it("records a known sampler's repair once per slot, and nothing for a stranger's or a forged one", async () => {
  const sampler = w.samplers[1]!;
  await publish("d-known", sampler, [2, 5]);
  await publish("d-known", sampler, [2, 5]); // the same event again (deduplicated, and idempotent anyway)
  await publish("d-stranger", newSigner(), [1]);
  await publish("d-forged", sampler, [3], true);
  await publish("d-last", w.samplers[0]!, [0]);
  const deadline = Date.now() + 20_000;
  while ((await repairs()).length < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  await new Promise((r) => setTimeout(r, 500));
  expect(await repairs()).toEqual([
    { dataset_id: "d-known", slot: 2, repairer: sampler.keyid },
    { dataset_id: "d-known", slot: 5, repairer: sampler.keyid },
    { dataset_id: "d-last", slot: 0, repairer: w.samplers[0]!.keyid },
  ]);
}, 60_000);
