// The kit's abuse suite against the marketplace's real handlers on the built service process,
// slashing stood in for by a server of its own contract (fake-slashing.ts).
import { MarketplaceService } from "@deai/contracts/deai/marketplace/v1/marketplace_pb";
import { KIT_BOOKKEEPING_TABLES, runAbuseSuite, spawnAbuseTarget } from "@deai/testkit";

import { startFakeSlashing } from "./fake-slashing.js";

const H100 = { vendor: "nvidia", model: "h100", vramGib: 80, interface: "sxm5" };
const price = { currency: "DEAI", micros: "2000000" };

runAbuseSuite({
  name: "marketplace",
  services: [MarketplaceService],
  start: async () => {
    const slashing = await startFakeSlashing();
    const target = await spawnAbuseTarget({
      name: "marketplace",
      mainJs: new URL("../dist/main.js", import.meta.url).pathname,
      vars: { MARKETPLACE_SLASHING_URL: slashing.url, MARKETPLACE_TICK_MS: "200" },
      // The replay group's first (valid) request queues an event the relay publishes and deletes
      // while the replay is judged: the outbox drains on its own. Domain rows still count.
      exclude: [...KIT_BOOKKEEPING_TABLES, "kit_outbox"],
    });
    return { ...target, stop: async () => (await target.stop(), await slashing.close()) };
  },
  seeds: {
    RegisterProvider: { displayName: "abuse provider", kinds: ["PROVIDER_KIND_GPU", "PROVIDER_KIND_STORAGE"], region: "eu-west" },
    CreateGpuOffer: { gpuClass: H100, gpusPerNode: 8, nodes: 2, region: "eu-west", bandwidthMbps: 1000, pricePerGpuHour: price },
    CreateStorageOffer: {
      capacityBytes: "1073741824",
      pricePerGibMonth: price,
      endpoint: "http://127.0.0.1:9000",
      bucket: "abuse",
      region: "eu-west",
    },
    CreateOrder: {
      spec: { gpuClass: H100, gpusPerGroup: 8, groups: 2, maxPricePerGpuHour: { currency: "DEAI", micros: "3000000" }, duration: "7200s" },
      idempotencyKey: "abuse-order",
    },
    Deposit: { accountId: "escrow:none", amount: { currency: "DEAI", micros: "1000" }, idempotencyKey: "abuse" },
    Withdraw: { accountId: "escrow:none", amount: { currency: "DEAI", micros: "1000" }, idempotencyKey: "abuse", destination: "x" },
    CloseLease: { leaseId: "lease-none", reason: "abuse" },
    CancelOrder: { orderId: "ord-none", reason: "abuse" },
    SetOfferState: { offerId: "gpu-none", state: "OFFER_STATE_PAUSED" },
  },
});
