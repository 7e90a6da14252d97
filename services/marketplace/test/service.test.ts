import { MarketplaceService } from "@deai/contracts/deai/marketplace/v1/marketplace_pb";
import { describeServiceProcess } from "@deai/testkit";

describeServiceProcess({
  name: "marketplace",
  mainJs: new URL("../dist/main.js", import.meta.url).pathname,
  service: MarketplaceService,
});
