// The kit's abuse suite against the slashing contract. No handler is built yet: UNIMPLEMENTED
// is the honest answer to valid-looking input, but hostile input must be refused before it.
import { SlashingService } from "@deai/contracts/deai/slashing/v1/slashing_pb";
import { runAbuseSuite, spawnAbuseTarget } from "@deai/testkit";

runAbuseSuite({
  name: "slashing",
  services: [SlashingService],
  start: () => spawnAbuseTarget({ name: "slashing", mainJs: new URL("../dist/main.js", import.meta.url).pathname }),
  unimplemented: (method) => method.parent === SlashingService,
});
