import { randomBytes } from "node:crypto";

import { shardLeafHash } from "@deai/kit";

import { LeafHashPool, SharedBuffers, sharedBuffer } from "./leaf-hashes.js";

it("hashes views of a shared buffer off the event loop, split over its threads, as shardLeafHash does", async () => {
  const S = 1024;
  const bytes = sharedBuffer(12 * S + 8);
  randomBytes(bytes.length).copy(bytes);
  // A view that does not start at the buffer's start (offsets are the view's).
  const view = bytes.subarray(8);
  const pool = new LeafHashPool(3);
  try {
    const offsets = [0, 5 * S, 11 * S, 3 * S + 1, 7 * S];
    const digests = await pool.hash(view, offsets, S);
    expect(digests.map((d) => d.toString("hex"))).toEqual(offsets.map((o) => shardLeafHash(view.subarray(o, o + S)).toString("hex")));
    expect(await pool.hash(view, [], S)).toEqual([]);
    await expect(pool.hash(Buffer.alloc(S), [0], S)).rejects.toThrow("SharedArrayBuffer");
  } finally {
    await pool.close();
  }
  await expect(pool.hash(view, [0], S)).rejects.toThrow("closed");
});

it("reuses released buffers, up to the number kept", () => {
  const buffers = new SharedBuffers(64, 1);
  const a = buffers.acquire();
  const b = buffers.acquire();
  expect(a.buffer).not.toBe(b.buffer);
  buffers.release(a);
  buffers.release(b);
  expect(buffers.acquire().buffer).toBe(a.buffer);
  expect(buffers.acquire().buffer).not.toBe(b.buffer);
});
