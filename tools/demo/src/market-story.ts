/**
 * The marketplace part of `make demo`: two GPU providers bond stake in slashing, register and
 * offer H100 nodes in two regions at different prices; a tenant orders two groups of 8 GPUs
 * and the gang is matched across both providers at once (each group at its offer's ask); the
 * tenant funds the order's escrow, one lease per group starts with its first epoch held; after
 * the epoch each provider signs a usage report, the tenant countersigns, and the epoch settles
 * from escrow to the provider; the same report again is a duplicate, not a second payment.
 */
import { ProviderKind, MarketplaceService, OrderState } from "@deai/contracts/deai/marketplace/v1/marketplace_pb";
import { SlashingService } from "@deai/contracts/deai/slashing/v1/slashing_pb";
import { actorKeyFromSeed, serviceClient } from "@deai/kit";
import { dsseSign, ed25519DsseSigner, IN_TOTO_PAYLOAD_TYPE, usageReportPayload } from "@deai/proofs";

const say = (s: string): void => void process.stdout.write(`${s}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const EPOCH_MS = 2000;
const money = (micros: bigint) => ({ currency: "DEAI", micros });
const H100 = { vendor: "nvidia", model: "h100", vramGib: 80, interface: "sxm5" };

/** The marketplace's environment in the demo: stake from the demo's slashing, records in its ledger, 2 s epochs. */
export function marketplaceDemoEnv(slashingUrl: string, ledgerUrl: string, logVerifierKey: string): Record<string, string> {
  return {
    MARKETPLACE_SLASHING_URL: slashingUrl,
    MARKETPLACE_LEDGER_URL: ledgerUrl,
    MARKETPLACE_LEDGER_LOG_KEY: logVerifierKey,
    MARKETPLACE_MIN_STAKE: "100000",
    MARKETPLACE_EPOCH_MS: String(EPOCH_MS),
    MARKETPLACE_TICK_MS: "200",
  };
}

function newKey() {
  const seed = new Uint8Array(32);
  crypto.getRandomValues(seed);
  return { key: actorKeyFromSeed(Buffer.from(seed).toString("base64url")), signer: ed25519DsseSigner(seed) };
}

/** Runs the story; true when every step checked out. */
export async function marketStory(o: { marketplaceUrl: string; slashingUrl: string }): Promise<boolean> {
  say("\n6. Marketplace: a two-group GPU order matched across two providers, funded from escrow and settled per epoch");
  let ok = true;
  const check = (cond: boolean, line: string) => {
    ok &&= cond;
    say(`   ${cond ? "✓" : "✗"} ${line}`);
  };
  const providers = [newKey(), newKey()];
  for (const [i, p] of providers.entries()) {
    await serviceClient(SlashingService, { baseUrl: o.slashingUrl, key: p.key }).bond({
      amount: money(1_000_000n),
      idempotencyKey: "market-demo",
    });
    const m = serviceClient(MarketplaceService, { baseUrl: o.marketplaceUrl, key: p.key });
    const region = i === 0 ? "eu-west" : "us-east";
    await m.registerProvider({ displayName: `gpu provider ${i + 1}`, kinds: [ProviderKind.GPU], region });
    const { offer } = await m.createGpuOffer({
      gpuClass: H100,
      gpusPerNode: 8,
      nodes: 1,
      region,
      bandwidthMbps: 1000,
      pricePerGpuHour: money(BigInt(i + 1) * 1_000_000n),
    });
    say(
      `   provider ${i + 1} (${region}) bonded 1000000, offers 1 node × 8 ${offer!.gpuClass!.model} (${offer!.gpuClass!.interconnect}) at ${offer!.pricePerGpuHour!.micros}/GPU-h`,
    );
  }
  const tenant = newKey();
  const t = serviceClient(MarketplaceService, { baseUrl: o.marketplaceUrl, key: tenant.key });
  const { order } = await t.createOrder({
    spec: {
      gpuClass: H100,
      gpusPerGroup: 8,
      groups: 2,
      maxPricePerGpuHour: money(3_000_000n),
      duration: { seconds: BigInt((2 * EPOCH_MS) / 1000) },
    },
    idempotencyKey: "market-demo",
  });
  const matches = await t.listMatches({ orderId: order!.orderId });
  check(
    order!.state === OrderState.RESERVED && new Set(matches.matches.map((m) => m.providerId)).size === 2,
    `order ${order!.orderId}: 2 groups reserved at once, ${matches.matches.map((m) => `group ${m.group} → provider ${providers.findIndex((p) => p.key.id === m.providerId) + 1} at ${m.pricePerGpuHour!.micros}`).join(", ")}`,
  );
  const epochCost = ((8n * 1_000_000n + 8n * 2_000_000n) * BigInt(EPOCH_MS)) / 3_600_000n;
  await t.deposit({ accountId: order!.escrowAccountId, amount: money(epochCost * 3n), idempotencyKey: "fund" });
  const { leases } = await t.listLeases({ orderId: order!.orderId });
  const esc = await t.getEscrowAccount({ accountId: order!.escrowAccountId });
  check(
    leases.length === 2,
    `escrow funded: ${leases.length} leases started, ${esc.account!.held!.micros} held for their first epoch, ${esc.account!.available!.micros} available`,
  );
  await sleep(EPOCH_MS + 300);
  for (const l of leases) {
    const p = providers.find((x) => x.key.id === l.providerId)!;
    const start = Number(l.startsAt!.seconds) * 1000 + Math.floor(l.startsAt!.nanos / 1e6);
    const payload = usageReportPayload({
      leaseId: l.leaseId,
      epoch: 0,
      periodStart: new Date(start).toISOString(),
      periodEnd: new Date(start + EPOCH_MS).toISOString(),
      gpuSeconds: 8 * (EPOCH_MS / 1000),
      heartbeatsMissed: 0,
      provider: p.key.id,
      operator: tenant.key.id,
    });
    const e = dsseSign(IN_TOTO_PAYLOAD_TYPE, payload, [p.signer, tenant.signer]);
    const report = {
      payloadType: e.payloadType,
      payload: e.payload,
      signatures: e.signatures.map((s) => ({ keyid: s.keyid, sig: s.sig })),
    };
    const m = serviceClient(MarketplaceService, { baseUrl: o.marketplaceUrl, key: p.key });
    const s = await m.submitUsageReport({ leaseId: l.leaseId, report });
    const again = await m.submitUsageReport({ leaseId: l.leaseId, report });
    check(
      !s.duplicate && again.duplicate && again.amount!.micros === s.amount!.micros,
      `lease group ${l.group}: epoch 0 settled ${s.amount!.micros} to the provider (${s.gpuSeconds} GPU-s); the same report again is a duplicate`,
    );
  }
  return ok;
}
