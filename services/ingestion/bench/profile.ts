// Summaries of V8 .cpuprofile files (node --cpu-prof) for the ingestion benchmark: self time
// and inclusive time per function, and self time per package. Also runnable on its own:
//   node services/ingestion/bench/dist/profile.js <file.cpuprofile> [top]
import { readdirSync, readFileSync } from "node:fs";
import { basename, join } from "node:path";
import { fileURLToPath } from "node:url";

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}

interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface FunctionTime {
  fn: string;
  ms: number;
  pct: number;
}

/** A time window on the monotonic clock (µs: process.hrtime.bigint() / 1000, same clock as V8's profile timestamps on Linux). */
export interface Window {
  fromUs: number;
  toUs: number;
}

export interface ProfileSummary {
  file: string;
  /** Wall time summarised (the window, or the whole profile). */
  wallMs: number;
  /** Sampled time not idle (JS, native, GC, program). */
  busyMs: number;
  idleMs: number;
  gcMs: number;
  /** Self time per package / area, percent of busy time. */
  byArea: FunctionTime[];
  /** Functions by self time (percent of busy time). */
  topSelf: FunctionTime[];
  /** Functions by inclusive time (on the stack; percent of busy time). */
  topInclusive: FunctionTime[];
}

const round = (n: number, d = 1): number => Math.round(n * 10 ** d) / 10 ** d;

/** A short location: node:internal/..., <package>/<file>, or the file under services|packages. */
function shortUrl(url: string): string {
  if (url === "") return "";
  const u = url.replace(/^file:\/\//, "");
  const nm = u.lastIndexOf("node_modules/");
  if (nm >= 0) return u.slice(nm + "node_modules/".length);
  const m = /\/((?:services|packages|tools)\/.*)$/.exec(u);
  return m ? m[1]! : u;
}

function area(frame: CallFrame): string {
  const name = frame.functionName;
  if (name === "(garbage collector)" || name === "(program)" || name === "(idle)" || name === "(root)") return name;
  const u = shortUrl(frame.url);
  if (u === "") return "(native / V8 builtins)";
  if (u.startsWith("node:")) return `node:${u.slice(5).split("/").slice(0, 2).join("/")}`;
  if (u.startsWith("services/") || u.startsWith("packages/")) return u.split("/").slice(0, 2).join("/");
  const parts = u.split("/");
  return parts[0]!.startsWith("@") ? `${parts[0]}/${parts[1]}` : parts[0]!;
}

function label(frame: CallFrame): string {
  const u = shortUrl(frame.url);
  return `${frame.functionName || "(anonymous)"}${u ? ` ${u}:${frame.lineNumber + 1}` : ""}`;
}

/** Summary of one profile; with `window`, only the samples taken inside it. */
export function summarizeProfile(file: string, top = 20, window?: Window): ProfileSummary {
  const p = JSON.parse(readFileSync(file, "utf8")) as CpuProfile;
  const byId = new Map<number, ProfileNode>();
  const parent = new Map<number, number>();
  for (const n of p.nodes) byId.set(n.id, n);
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const self = new Map<string, number>();
  const incl = new Map<string, number>();
  const areas = new Map<string, number>();
  let idle = 0;
  let gc = 0;
  let total = 0;
  // Sample i is taken at startTime + Σ timeDeltas[0..i] and lasts until the next one.
  let at = p.startTime;
  for (let i = 0; i < p.samples.length; i++) {
    at += p.timeDeltas[i] ?? 0;
    const us = p.timeDeltas[i + 1] ?? 0;
    if (window && (at < window.fromUs || at >= window.toUs)) continue;
    const node = byId.get(p.samples[i]!);
    if (!node) continue;
    total += us;
    const f = node.callFrame;
    if (f.functionName === "(idle)") {
      idle += us;
      continue;
    }
    if (f.functionName === "(garbage collector)") gc += us;
    const l = label(f);
    self.set(l, (self.get(l) ?? 0) + us);
    const a = area(f);
    areas.set(a, (areas.get(a) ?? 0) + us);
    const seen = new Set<string>();
    for (let id: number | undefined = node.id; id !== undefined; id = parent.get(id)) {
      const cf = byId.get(id)!.callFrame;
      if (cf.functionName === "(root)") break;
      const key = label(cf);
      if (seen.has(key)) continue;
      seen.add(key);
      incl.set(key, (incl.get(key) ?? 0) + us);
    }
  }
  const busy = total - idle;
  const list = (m: Map<string, number>, n: number): FunctionTime[] =>
    [...m.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, n)
      .map(([fn, us]) => ({ fn, ms: round(us / 1000), pct: round((100 * us) / Math.max(1, busy)) }));
  return {
    file: basename(file),
    wallMs: round((window ? Math.min(window.toUs, p.endTime) - Math.max(window.fromUs, p.startTime) : p.endTime - p.startTime) / 1000),
    busyMs: round(busy / 1000),
    idleMs: round(idle / 1000),
    gcMs: round(gc / 1000),
    byArea: list(areas, 15),
    topSelf: list(self, top),
    topInclusive: list(incl, top),
  };
}

/** Summaries of every .cpuprofile in `dir` (one per thread), the main thread's first. */
export function summarizeDir(dir: string, top = 20, window?: Window): ProfileSummary[] {
  let files: string[];
  try {
    files = readdirSync(dir).filter((f) => f.endsWith(".cpuprofile"));
  } catch {
    return [];
  }
  // CPU.<date>.<time>.<pid>.<thread id>.<seq>.cpuprofile: thread 0 is the main thread.
  const tid = (f: string): number => Number(f.split(".")[4] ?? 0);
  return files.sort((a, b) => tid(a) - tid(b)).map((f) => summarizeProfile(join(dir, f), top, window));
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const file = process.argv[2];
  if (!file) {
    process.stderr.write("usage: node profile.js <file.cpuprofile | dir> [top]\n");
    process.exit(2);
  }
  const top = Number(process.argv[3] ?? 25);
  const out = file.endsWith(".cpuprofile") ? [summarizeProfile(file, top)] : summarizeDir(file, top);
  process.stdout.write(JSON.stringify(out, null, 2) + "\n");
}
