// The process that money-crash.test.ts kills with SIGKILL: workers moving money through the
// kit's built code (dist/), printing one line per transfer only after its commit returned.
// Usage: node money-crash-child.mjs <database url> <schema> <account ids, comma-separated>
import { openDatabase } from "../dist/db/database.js";
import { amount } from "../dist/money/amount.js";
import { createTransfer, createTransfers } from "../dist/money/transfers.js";
import { systemClock } from "../dist/time/clock.js";

const [url, schema, accountList] = process.argv.slice(2);
const accounts = accountList.split(",");
const database = openDatabase({ url, schema, poolSize: 8 });
const db = database.db;
let n = 0;

const pickPair = () => {
  const debit = accounts[Math.floor(Math.random() * accounts.length)];
  let credit = debit;
  while (credit === debit) credit = accounts[Math.floor(Math.random() * accounts.length)];
  return { debitAccountId: debit, creditAccountId: credit, ledger: "DEAI" };
};
const units = () => amount(BigInt(1 + Math.floor(Math.random() * 50)));
const ack = (inputs) => process.stdout.write(`${JSON.stringify(inputs, (_, v) => (typeof v === "bigint" ? `${v}n` : v))}\n`);

async function worker(w) {
  for (;;) {
    const id = `c${w}-${n++}`;
    const r = Math.random();
    try {
      if (r < 0.4) {
        const t = { kind: "single", id, ...pickPair(), amount: units(), code: "move" };
        await createTransfer(db, systemClock, t);
        ack([t]);
      } else if (r < 0.75) {
        // Two commits: the hold, then its post.
        const hold = { kind: "pending", id: `${id}-hold`, ...pickPair(), amount: units(), code: "hold", timeoutMs: 3_600_000 };
        await createTransfer(db, systemClock, hold);
        ack([hold]);
        const post = { kind: "post", id: `${id}-post`, pendingId: hold.id, amount: amount(hold.amount - (hold.amount > 1n ? 1n : 0n)) };
        await createTransfer(db, systemClock, post);
        ack([post]);
      } else {
        // One commit: a linked batch, all or nothing.
        const hold = { kind: "pending", id: `${id}-bhold`, ...pickPair(), amount: units(), code: "hold" };
        const batch = [
          hold,
          { kind: "post", id: `${id}-bpost`, pendingId: hold.id },
          { kind: "single", id: `${id}-bmove`, ...pickPair(), amount: units(), code: "move" },
        ];
        await createTransfers(db, systemClock, batch);
        ack(batch);
      }
    } catch (e) {
      // A limit refused it: not applied, not acknowledged.
      if (e?.kind !== "failed_precondition") {
        process.stderr.write(`${e?.stack ?? e}\n`);
        process.exit(2);
      }
    }
  }
}

for (let w = 0; w < 8; w++) void worker(w);
