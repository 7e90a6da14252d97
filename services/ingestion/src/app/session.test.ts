import { StripeCodec } from "../coding/reed-solomon.js";
import { UploadSession, type GroupCommit } from "./session.js";

// The pipeline's bookkeeping, with an in-memory group store (storage itself is covered by the
// integration tests against real S3 servers).
function session(start: { durableOffset: number; hashValid: boolean; finished?: boolean }, totalSize?: number) {
  const commits: GroupCommit[] = [];
  const s = new UploadSession("u", new StripeCodec(2, 1, 8), 2, { commitGroup: async (g) => void commits.push(g) }, start, totalSize);
  return { s, commits };
}

it("commits whole groups while streaming and the partial tail on finish", async () => {
  const { s, commits } = session({ durableOffset: 0, hashValid: true });
  await s.write(new Uint8Array(16 * 2 + 5).fill(7)); // two stripes of 16 bytes = one group, then 5 bytes
  await s.settle();
  expect(commits.map((c) => [c.groupIndex, c.stripes, c.endOffset, c.final])).toEqual([[0, 2, 32, false]]);
  expect(s.durable).toBe(32);
  await s.finish();
  expect(commits.map((c) => [c.groupIndex, c.stripes, c.endOffset, c.final])).toEqual([
    [0, 2, 32, false],
    [1, 1, 37, true],
  ]);
  expect(s.durable).toBe(37);
  await expect(s.write(new Uint8Array(1))).rejects.toThrow(/already finished/);
  // A rollback after the final commit cannot reopen the stream.
  await s.rollbackToDurable();
  expect(s.finished).toBe(true);
});

it("a session rebuilt after a restart at an unaligned durable offset is finished; an unfinished one must be aligned", async () => {
  const { s, commits } = session({ durableOffset: 37, hashValid: false, finished: true });
  expect(s.finished).toBe(true);
  await s.finish();
  expect(commits).toEqual([]);
  expect(() => session({ durableOffset: 37, hashValid: false })).toThrow(/not a whole number of part groups/);
});

it("a failed group commit surfaces on the next write and rolls back to the durable offset", async () => {
  let fail = true;
  const s = new UploadSession(
    "u",
    new StripeCodec(2, 1, 8),
    1,
    {
      commitGroup: async () => {
        if (fail) throw new Error("provider down");
      },
    },
    { durableOffset: 0, hashValid: true },
  );
  await s.write(new Uint8Array(16));
  await expect(s.settle()).rejects.toThrow(/provider down/);
  await s.rollbackToDurable();
  expect([s.durable, s.received]).toEqual([0, 0]);
  fail = false;
  await s.write(new Uint8Array(16));
  await s.settle();
  expect(s.durable).toBe(16);
});
