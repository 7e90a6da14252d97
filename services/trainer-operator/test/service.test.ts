import { TrainingService } from "@deai/contracts/deai/training/v1/training_pb";
import { describeServiceProcess } from "@deai/testkit";

describeServiceProcess({
  name: "trainer-operator",
  mainJs: new URL("../dist/main.js", import.meta.url).pathname,
  service: TrainingService,
});
