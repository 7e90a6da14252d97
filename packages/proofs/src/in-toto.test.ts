import { ProofError } from "./errors.js";
import { parseStatementFrame, statementBytes, statementOf, STATEMENT_V1_TYPE } from "./in-toto.js";
import { isPlatformPredicateType, PredicateTypes } from "./predicates.js";

const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);

function message(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    if (e instanceof ProofError) return e.message;
    throw e;
  }
  return "no error";
}

describe("in-toto Statement v1", () => {
  it("builds the statement bytes that parse back to the same statement", () => {
    const s = statementOf(PredicateTypes.datasetManifest, [{ name: "d", digest: { sha256: "ab".repeat(32) } }], { size: "1" });
    expect(s._type).toBe("https://in-toto.io/Statement/v1");
    expect(parseStatementFrame(statementBytes(s))).toEqual(s);
    expect(statementOf("p", [{ digest: { sha256: "00" } }])).not.toHaveProperty("predicate");
    expect(new TextDecoder().decode(statementBytes(statementOf("p\ud800", [{}])))).toContain('"p\\ud800"');
  });

  it("refuses everything that is not a Statement v1 frame, naming the problem", () => {
    const ok = { _type: STATEMENT_V1_TYPE, subject: [{ digest: { sha256: "00" } }], predicateType: "p" };
    const cases: [unknown, RegExp][] = [
      [[], /JSON object/],
      [{ ...ok, _type: "https://in-toto.io/Statement/v0.1" }, /_type/],
      [{ ...ok, predicateType: "" }, /predicateType/],
      [{ ...ok, subject: [] }, /subject/],
      [{ ...ok, subject: ["x"] }, /subject\[0\]/],
      [{ ...ok, predicate: [1] }, /predicate/],
    ];
    for (const [json, why] of cases) expect(message(() => parseStatementFrame(bytes(JSON.stringify(json))))).toMatch(why);
    expect(message(() => parseStatementFrame(new Uint8Array([0xff])))).toMatch(/UTF-8/);
    expect(message(() => parseStatementFrame(bytes("{")))).toMatch(/JSON/);
  });

  it("lists every platform predicate type, each https://deai.dev/<name>/v1 or SLSA Provenance v1", () => {
    const uris = Object.values(PredicateTypes);
    expect(uris).toHaveLength(10);
    for (const uri of uris) expect(uri).toMatch(/^https:\/\/(deai\.dev\/[a-z-]+\/v1|slsa\.dev\/provenance\/v1)$/);
    expect(isPlatformPredicateType(PredicateTypes.veto)).toBe(true);
    expect(isPlatformPredicateType("https://example.com/other/v1")).toBe(false);
  });
});
