// The kit's abuse suite against the slashing contract, on the built service process: hostile
// input is refused with a precise 4xx before or by the handlers, nothing changes state, and
// valid-looking requests for unknown providers, evidence and slashes get NOT_FOUND /
// INVALID_ARGUMENT, never a 5xx. Seeds make each request valid but for the planted value.
import { SlashingService } from "@deai/contracts/deai/slashing/v1/slashing_pb";
import { generateActorKey } from "@deai/kit";
import { runAbuseSuite, spawnAbuseTarget, validGet } from "@deai/testkit";

const provider = generateActorKey().id;
const hex64 = "ab".repeat(32);

runAbuseSuite({
  name: "slashing",
  services: [SlashingService],
  start: () =>
    spawnAbuseTarget({
      name: "slashing",
      mainJs: new URL("../dist/main.js", import.meta.url).pathname,
      vars: { SLASHING_MIN_STAKE: "10" },
    }),
  validRequests: [
    validGet(`/v1/slashing/providers/${provider}/status`),
    validGet(`/v1/slashing/stakes/${provider}`),
    validGet(`/v1/slashing/slashes?providerId=${provider}`),
  ],
  seeds: {
    // A bond of 0 is refused (amounts are positive): the planted value is never the only thing
    // standing between a hostile request and a state change it should not make.
    Bond: { amount: { currency: "DEAI", micros: "0" }, idempotencyKey: "abuse" },
    Unbond: { amount: { currency: "DEAI", micros: "1" }, idempotencyKey: "abuse" },
    GetStake: { providerId: provider },
    GetProviderStatus: { providerId: provider },
    GetEvidence: { evidenceId: hex64 },
    ListSlashes: { providerId: provider, pageSize: 10 },
    Veto: { slashId: "ab".repeat(16), reason: "abuse" },
  },
});
