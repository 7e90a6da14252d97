import { randomBytes } from "node:crypto";

import { connect } from "nats";

export const natsUrl = process.env.TEST_NATS_URL ?? "nats://127.0.0.1:4222";

/** A unique subject/stream prefix so test files never see each other's events. */
export function uniqueNatsPrefix(label = "t"): string {
  return `${label
    .replace(/[^a-z0-9]/gi, "")
    .toLowerCase()
    .slice(0, 12)}${randomBytes(4).toString("hex")}`;
}

/** Deletes every stream whose name starts with the prefix's stream form. */
export async function deleteNatsStreams(prefix: string): Promise<void> {
  const nc = await connect({ servers: natsUrl });
  try {
    const jsm = await nc.jetstreamManager();
    const p = prefix.replace(/[^A-Za-z0-9_-]/g, "_") + "_";
    for await (const s of jsm.streams.list()) if (s.config.name.startsWith(p)) await jsm.streams.delete(s.config.name);
  } finally {
    await nc.close();
  }
}
