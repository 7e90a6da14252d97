// shard_invalid goes through the outbox: found while NATS is unreachable, it is stored with its
// event in one transaction and arrives exactly once when NATS is back.
import { createServer, connect as tcpConnect, type Server, type Socket } from "node:net";

import { fromBinary } from "@bufbuild/protobuf";
import { connect, type NatsConnection } from "nats";
import { sql, type Kysely } from "kysely";

import { ShardInvalidSchema } from "@deai/contracts/deai/events/v1/ingestion_pb";
import { generateActorKey, startService, streamName, type RunningService } from "@deai/kit";
import { natsUrl } from "@deai/testkit";

import { loadIngestionConfig } from "../src/config.js";
import { ingestionDefinition } from "../src/definition.js";
import { DATASET_STREAM, DatasetSubjects } from "../src/events/dataset-events.js";
import type { IngestionDb } from "../src/store/tables.js";
import { bytesOf, providerClient, startHarness, uploadAll, type Harness } from "./harness.js";

/** A TCP proxy to NATS that can go away (refusing connections, cutting the open ones) and come back on its port. */
async function natsProxy(target: string): Promise<{ url: string; down(): Promise<void>; up(): Promise<void>; close(): Promise<void> }> {
  const u = new URL(target.replace(/^nats:/, "http:"));
  const sockets = new Set<Socket>();
  let server: Server | undefined;
  let port = 0;
  const up = async (): Promise<void> => {
    const s = createServer((client) => {
      const upstream = tcpConnect(Number(u.port || 4222), u.hostname);
      sockets.add(client).add(upstream);
      client.pipe(upstream).pipe(client);
      const end = (): void => {
        client.destroy();
        upstream.destroy();
        sockets.delete(client);
        sockets.delete(upstream);
      };
      client.on("close", end).on("error", end);
      upstream.on("close", end).on("error", end);
    });
    await new Promise<void>((r) => s.listen(port, "127.0.0.1", r));
    port = (s.address() as { port: number }).port;
    server = s;
  };
  const down = async (): Promise<void> => {
    const s = server;
    server = undefined;
    for (const x of sockets) x.destroy();
    sockets.clear();
    await new Promise<void>((r) => (s ? s.close(() => r()) : r()));
  };
  await up();
  return { url: `nats://127.0.0.1:${port}`, down, up, close: down };
}

const K = 4;
const M = 2;
const owner = generateActorKey();
let h: Harness;
let proxy: Awaited<ReturnType<typeof natsProxy>>;
let svc: RunningService<IngestionDb>;
let nc: NatsConnection;
let base: string;

beforeAll(async () => {
  h = await startHarness("ingestion-events", K + M);
  proxy = await natsProxy(natsUrl);
  const config = loadIngestionConfig(
    h.env.vars({ NATS_URL: proxy.url, INGESTION_PROVIDERS: h.providersJson(), INGESTION_LEDGER_URL: h.ledgerUrl }),
  );
  svc = await startService(ingestionDefinition(config), config);
  base = `http://127.0.0.1:${svc.port}`;
  nc = await connect({ servers: natsUrl });
}, 120_000);

afterAll(async () => {
  await svc?.stop();
  await nc?.close();
  await proxy?.close();
  await h?.close();
});

/** How many shard_invalid events the dataset stream holds. */
async function shardInvalidCount(): Promise<number> {
  const jsm = await nc.jetstreamManager();
  const subject = `${h.env.natsPrefix}.${DatasetSubjects.shardInvalid}`;
  const info = await jsm.streams.info(streamName(h.env.natsPrefix, DATASET_STREAM), { subjects_filter: subject });
  return info.state.subjects?.[subject] ?? 0;
}

it("a shard found invalid while NATS is unreachable is published exactly once when NATS is back", async () => {
  const data = bytesOf(200_000, 9);
  const { done } = await uploadAll(base, owner, data);
  const datasetId = done.datasetId as string;
  const p = done.manifest.placements[1];
  const obj = providerClient(h.providers[Number(p.providerId.slice(1))]!);
  const chunks: Buffer[] = [];
  for await (const c of await obj.getObject("shards", p.key)) chunks.push(c as Buffer);
  const bad = Buffer.concat(chunks);
  bad[4096 + 7]! ^= 0xff; // stripe 1 of slot 1
  await obj.putObject("shards", p.key, bad);
  expect(await shardInvalidCount()).toBe(0);

  await proxy.down();
  const res = await fetch(`${base}/v1/datasets/${datasetId}/content`);
  expect(res.status).toBe(200);
  expect(Buffer.from(await res.arrayBuffer()).equals(data)).toBe(true);
  // The finding is stored with its event queued; nothing reached NATS.
  const db = svc.deps.db as unknown as Kysely<unknown>;
  const queued = async (): Promise<number> =>
    Number(
      (await sql<{ n: string }>`select count(*)::text as n from kit_outbox where subject = ${DatasetSubjects.shardInvalid}`.execute(db))
        .rows[0]!.n,
    );
  for (let i = 0; i < 50 && (await queued()) === 0; i++) await new Promise((r) => setTimeout(r, 100));
  expect(await queued()).toBe(1);
  const findings = await sql<{
    stripe: string;
    slot: number;
    provider_id: string;
  }>`select stripe::text, slot, provider_id from shard_findings`.execute(db);
  expect(findings.rows).toEqual([{ stripe: "1", slot: 1, provider_id: p.providerId }]);
  await new Promise((r) => setTimeout(r, 1500));
  expect(await shardInvalidCount()).toBe(0);

  await proxy.up();
  for (let i = 0; i < 150 && (await shardInvalidCount()) === 0; i++) await new Promise((r) => setTimeout(r, 100));
  await new Promise((r) => setTimeout(r, 1500));
  expect(await shardInvalidCount()).toBe(1);
  expect(await queued()).toBe(0);
  const jsm = await nc.jetstreamManager();
  const msg = await jsm.streams.getMessage(streamName(h.env.natsPrefix, DATASET_STREAM), {
    last_by_subj: `${h.env.natsPrefix}.${DatasetSubjects.shardInvalid}`,
  });
  expect(fromBinary(ShardInvalidSchema, msg.data)).toMatchObject({ datasetId, providerId: p.providerId, stripe: 1n, slot: 1 });
}, 90_000);
