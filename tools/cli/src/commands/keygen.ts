// deai keygen [--out FILE]
import { newKeyFile, writeKeyFile } from "../actor-key.js";
import { str, type Context } from "../cli.js";

export async function keygen(ctx: Context): Promise<void> {
  const key = await newKeyFile();
  const out = str(ctx, "out");
  if (out === undefined) {
    // The key itself is the output: JSON either way.
    process.stdout.write(JSON.stringify(key, null, 2) + "\n");
    return;
  }
  await writeKeyFile(out, key);
  ctx.say(`wrote ${out}\nactor ${key.actor}`);
  ctx.emit({ actor: key.actor, out });
}
