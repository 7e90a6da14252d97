import { DaSamplerService } from "@deai/contracts/deai/da/v1/da_pb";
import { describeServiceProcess } from "@deai/testkit";

describeServiceProcess({
  name: "da-sampler",
  mainJs: new URL("../dist/main.js", import.meta.url).pathname,
  service: DaSamplerService,
});
