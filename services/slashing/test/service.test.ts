import { SlashingService } from "@deai/contracts/deai/slashing/v1/slashing_pb";
import { describeServiceProcess } from "@deai/testkit";

describeServiceProcess({
  name: "slashing",
  mainJs: new URL("../dist/main.js", import.meta.url).pathname,
  service: SlashingService,
});
