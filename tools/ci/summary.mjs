// Prints the closing line CI reads: "test: N passed, N failed[, N skipped]", adding up
// every result file the test targets wrote (jest JSON; pytest JUnit XML).
import { existsSync, readFileSync } from "node:fs";

let passed = 0;
let failed = 0;
let skipped = 0;
const jest = ".turbo/jest-results.json";
if (existsSync(jest)) {
  const r = JSON.parse(readFileSync(jest, "utf8"));
  passed += r.numPassedTests;
  failed += r.numFailedTests;
  skipped += r.numPendingTests + (r.numTodoTests ?? 0);
}
const pytest = ".turbo/pytest-results.xml";
if (existsSync(pytest)) {
  const xml = readFileSync(pytest, "utf8");
  for (const m of xml.matchAll(/<testsuite\b[^>]*>/g)) {
    const attr = (n) => Number(new RegExp(`\\b${n}="(\\d+)"`).exec(m[0])?.[1] ?? 0);
    const total = attr("tests");
    const bad = attr("failures") + attr("errors");
    const skip = attr("skipped");
    passed += total - bad - skip;
    failed += bad;
    skipped += skip;
  }
}
if (passed + failed === 0) {
  console.error("test: no test results found");
  process.exit(1);
}
console.log(`test: ${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ""}`);
process.exit(failed > 0 ? 1 : 0);
