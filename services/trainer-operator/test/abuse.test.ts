// The kit's abuse suite against the trainer-operator contract. No handler is built yet: UNIMPLEMENTED
// is the honest answer to valid-looking input, but hostile input must be refused before it.
import { TrainingService } from "@deai/contracts/deai/training/v1/training_pb";
import { runAbuseSuite, spawnAbuseTarget } from "@deai/testkit";

runAbuseSuite({
  name: "trainer-operator",
  services: [TrainingService],
  start: () => spawnAbuseTarget({ name: "trainer-operator", mainJs: new URL("../dist/main.js", import.meta.url).pathname }),
  unimplemented: (method) => method.parent === TrainingService,
});
