// One erasure codec per geometry, shared by uploads and reads.
import { StripeCodec } from "../coding/reed-solomon.js";

const codecs = new Map<string, StripeCodec>();

/** The codec of a (k, m, S) geometry (created once). */
export function codecFor(k: number, m: number, shardSize: number): StripeCodec {
  const key = `${k}/${m}/${shardSize}`;
  let c = codecs.get(key);
  if (!c) codecs.set(key, (c = new StripeCodec(k, m, shardSize)));
  return c;
}
