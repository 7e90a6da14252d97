// Locates shared/testdata (a sibling of the repository root) for the conformance tests.
// A missing folder is an error, never a skip: a conformance suite that silently runs
// nothing cannot fail.

import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/** The repository root: the nearest ancestor holding turbo.json or .git. */
export function repoRoot(from: string = dirname(fileURLToPath(import.meta.url))): string {
  for (let dir = resolve(from); ; dir = dirname(dir)) {
    if (existsSync(join(dir, "turbo.json")) || existsSync(join(dir, ".git"))) return dir;
    if (dirname(dir) === dir) throw new Error(`no repository root (turbo.json or .git) above ${from}`);
  }
}

/** Absolute path of shared/testdata/<sub>; throws a clear error when it is missing. */
export function sharedTestdata(sub = ""): string {
  const dir = resolve(repoRoot(), "..", "shared", "testdata", sub);
  if (!existsSync(dir) || !statSync(dir).isDirectory()) {
    throw new Error(
      `conformance data missing: ${dir} does not exist. The proofs tests need the shared/testdata ` +
        `folder next to the repository root (as in CI's checkout); they fail rather than skip without it.`,
    );
  }
  return dir;
}

/** Every *.json file below dir, recursively, sorted, as [relative path, parsed JSON]. */
export function loadJsonTree(dir: string): [string, unknown][] {
  const out: [string, unknown][] = [];
  const walk = (d: string): void => {
    for (const name of readdirSync(d).sort()) {
      const p = join(d, name);
      if (statSync(p).isDirectory()) walk(p);
      else if (name.endsWith(".json")) out.push([p.slice(dir.length + 1), JSON.parse(readFileSync(p, "utf8"))]);
    }
  };
  walk(dir);
  return out;
}
