// The kit's abuse suite against the marketplace contract. No handler is built yet: UNIMPLEMENTED
// is the honest answer to valid-looking input, but hostile input must be refused before it.
import { MarketplaceService } from "@deai/contracts/deai/marketplace/v1/marketplace_pb";
import { runAbuseSuite, spawnAbuseTarget } from "@deai/testkit";

runAbuseSuite({
  name: "marketplace",
  services: [MarketplaceService],
  start: () => spawnAbuseTarget({ name: "marketplace", mainJs: new URL("../dist/main.js", import.meta.url).pathname }),
  unimplemented: (method) => method.parent === MarketplaceService,
});
