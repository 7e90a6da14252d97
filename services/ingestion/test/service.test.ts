import { IngestionService } from "@deai/contracts/deai/ingestion/v1/ingestion_pb";
import { describeServiceProcess } from "@deai/testkit";

describeServiceProcess({
  name: "ingestion",
  mainJs: new URL("../dist/main.js", import.meta.url).pathname,
  service: IngestionService,
});
