import { readFileSync } from "node:fs";

import { GpuClassCatalog } from "./gpu-classes.js";

/** Where the catalog lives: `packages/kit/data/gpu-classes.json` (the same depth from src/ and dist/). */
export const GPU_CLASS_CATALOG_PATH = new URL("../../data/gpu-classes.json", import.meta.url);

/** Reads and checks the catalog file (default: the repository's). */
export function loadGpuClassCatalog(path: string | URL = GPU_CLASS_CATALOG_PATH): GpuClassCatalog {
  return GpuClassCatalog.fromJson(JSON.parse(readFileSync(path, "utf8")));
}
