import { LedgerService } from "@deai/contracts/deai/ledger/v1/ledger_pb";
import { describeServiceProcess } from "@deai/testkit";

describeServiceProcess({
  name: "ledger",
  mainJs: new URL("../dist/main.js", import.meta.url).pathname,
  service: LedgerService,
});
