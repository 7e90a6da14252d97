// The kit's abuse suite against the da-sampler contract. No handler is built yet: UNIMPLEMENTED
// is the honest answer to valid-looking input, but hostile input must be refused before it.
import { DaSamplerService } from "@deai/contracts/deai/da/v1/da_pb";
import { runAbuseSuite, spawnAbuseTarget } from "@deai/testkit";

runAbuseSuite({
  name: "da-sampler",
  services: [DaSamplerService],
  start: () => spawnAbuseTarget({ name: "da-sampler", mainJs: new URL("../dist/main.js", import.meta.url).pathname }),
  unimplemented: (method) => method.parent === DaSamplerService,
});
