// The kit's abuse suite against the da-sampler contract: hostile input is refused with a precise
// 4xx before any handler runs, and valid-looking input for unknown datasets, providers and
// attestations gets NOT_FOUND / INVALID_ARGUMENT, never a 5xx.
import { DaSamplerService } from "@deai/contracts/deai/da/v1/da_pb";
import { runAbuseSuite, spawnAbuseTarget } from "@deai/testkit";

runAbuseSuite({
  name: "da-sampler",
  services: [DaSamplerService],
  start: () => spawnAbuseTarget({ name: "da-sampler", mainJs: new URL("../dist/main.js", import.meta.url).pathname }),
});
