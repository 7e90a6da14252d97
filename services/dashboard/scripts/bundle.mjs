// Bundles the browser app (preact, htm, @deai/proofs and its @noble deps) into dist/public:
// one ES module, no CDN at runtime.
import { copyFile, mkdir } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

import { build } from "esbuild";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const out = join(root, "dist", "public");
await mkdir(out, { recursive: true });
await build({
  entryPoints: [join(root, "src", "web", "app.ts")],
  bundle: true,
  format: "esm",
  platform: "browser",
  target: ["es2022"],
  minify: true,
  sourcemap: true,
  outfile: join(out, "app.js"),
  logLevel: "warning",
});
await copyFile(join(root, "src", "web", "index.html"), join(out, "index.html"));
await copyFile(join(root, "src", "web", "style.css"), join(out, "style.css"));
