import { randomBytes } from "node:crypto";

import { StripeCodec } from "./reed-solomon.js";

const k = 4;
const m = 2;
const S = 4096;

/** A stripe laid out as rebuildInPlace wants it: n shards, k data then m parity. */
async function stripe(): Promise<Buffer> {
  const codec = new StripeCodec(k, m, S);
  const data = randomBytes(k * S);
  return Buffer.concat([data, await codec.encode(data)]);
}

it("rebuildInPlace rebuilds the slots it is not given where they lie, from views of a larger buffer", async () => {
  const codec = new StripeCodec(k, m, S);
  const whole = await stripe();
  // The stripe inside a larger buffer (as repair's read windows hold several).
  const window = Buffer.alloc(whole.length + 3 * S, 0xee);
  whole.copy(window, S);
  const view = window.subarray(S, S + whole.length);
  for (const lost of [[1], [0, 3], [2, 5], [4]]) {
    for (const slot of lost) view.fill(0, slot * S, (slot + 1) * S);
    await codec.rebuildInPlace(
      view,
      Array.from({ length: k + m }, (_, i) => i).filter((i) => !lost.includes(i)),
    );
    expect(view.equals(whole)).toBe(true);
  }
  // Nothing outside the view is touched.
  expect(window.subarray(0, S).every((b) => b === 0xee)).toBe(true);
  expect(window.subarray(S + whole.length).every((b) => b === 0xee)).toBe(true);
});

it("rebuildInPlace decodes from the first k given: slots given past them are never read", async () => {
  const codec = new StripeCodec(k, m, S);
  const whole = await stripe();
  const view = Buffer.from(whole);
  // Slot 1 lost; slots 0, 2, 3, 4 real; slot 5 given as garbage (a placeholder) is not recomputed.
  view.fill(0, S, 2 * S);
  view.fill(0xab, 5 * S, 6 * S);
  await codec.rebuildInPlace(view, [0, 2, 3, 4, 5]);
  expect(view.subarray(S, 2 * S).equals(whole.subarray(S, 2 * S))).toBe(true);
  expect(view.subarray(5 * S).every((b) => b === 0xab)).toBe(true);
});

it("rebuildInPlace refuses fewer than k shards, unknown slots and a wrong size", async () => {
  const codec = new StripeCodec(k, m, S);
  const view = await stripe();
  expect(() => codec.rebuildInPlace(view, [0, 1, 2])).toThrow("need at least 4 of 6 shards");
  expect(() => codec.rebuildInPlace(view, [0, 1, 2, 6])).toThrow("slots 0 to 5, got 6");
  expect(() => codec.rebuildInPlace(view.subarray(S), [0, 1, 2, 3])).toThrow(`a stripe is ${6 * S} bytes`);
});
