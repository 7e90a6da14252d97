import { fromJson } from "@bufbuild/protobuf";

import { CreateUploadRequestSchema, GetDatasetRequestSchema, IngestionService } from "@deai/contracts/deai/ingestion/v1/ingestion_pb";
import { AppendRequestSchema } from "@deai/contracts/deai/ledger/v1/ledger_pb";

import { judge, type AbuseCase } from "./abuse-case.js";
import { grpcBytes } from "./method-requests.js";
import { plant, requestSlots } from "./request-fields.js";

const byLabel = (schema: Parameters<typeof requestSlots>[0]) => new Map(requestSlots(schema).map((s) => [s.label, s]));

describe("request slots", () => {
  it("reach nested, repeated and map fields, map keys included", () => {
    const upload = byLabel(CreateUploadRequestSchema);
    expect([...upload.keys()]).toEqual(
      expect.arrayContaining(["spec.name", "spec.provenance{key}", "spec.provenance{value}", "spec.parents[].hex"]),
    );
    expect(upload.get("spec.name")?.type).toBe("string");
    expect(byLabel(AppendRequestSchema).get("envelope.signatures[].keyid")?.type).toBe("string");
  });

  it("plant one value into a copy of the seed, as a map key where the slot is one", () => {
    const upload = byLabel(CreateUploadRequestSchema);
    const seed = { spec: { name: "n", k: 2 } };
    expect(plant(seed, upload.get("spec.provenance{key}")!, "a\u0000b")).toEqual({
      spec: { name: "n", k: 2, provenance: { "a\u0000b": "" } },
    });
    expect(plant(seed, upload.get("spec.parents[].hex")!, "x")).toEqual({ spec: { name: "n", k: 2, parents: [{ hex: "x" }] } });
    expect(seed).toEqual({ spec: { name: "n", k: 2 } });
  });

  it("clear the other members of a oneof, so the planted value is the only fault", () => {
    const slot = byLabel(GetDatasetRequestSchema).get("content_digest_sha256")!;
    const json = plant({ datasetId: "d" }, slot, "x");
    expect(json).toEqual({ contentDigestSha256: "x" });
    expect(() => fromJson(GetDatasetRequestSchema, json)).not.toThrow();
  });

  it("put a lone surrogate on the gRPC wire as invalid UTF-8 of the same length", () => {
    const bytes = Buffer.from(grpcBytes(IngestionService.method.getDataset, { datasetId: "a\uFDD0b" }));
    expect(bytes.includes(Buffer.from([0x61, 0xed, 0xa0, 0x80, 0x62]))).toBe(true);
  });
});

describe("judge", () => {
  const c = (expect: AbuseCase["expect"]): AbuseCase => ({
    label: "x",
    method: {} as never,
    kind: "nul",
    expect,
    send: () => Promise.reject(new Error("unused")),
  });

  it("refuses faults, acceptances and imprecise refusals", () => {
    expect(judge(c("invalid-argument"), { transport: "rest", status: 500, detail: "" }, false)).toBe("a server fault");
    expect(judge(c("invalid-argument"), { transport: "grpc", code: 13, detail: "" }, false)).toBe("a server fault");
    expect(judge(c("invalid-argument"), { transport: "rest", status: 200, detail: "" }, false)).toBe("accepted");
    expect(judge(c("invalid-argument"), { transport: "rest", status: 404, detail: "" }, false)).toBe("expected invalid-argument");
    expect(judge(c("unauthenticated"), { transport: "grpc", code: 16, detail: "" }, false)).toBeUndefined();
    expect(judge(c("invalid-argument"), { transport: "rest", broken: "connection error: ECONNRESET", detail: "" }, false)).toBe(
      "connection error: ECONNRESET",
    );
  });

  it("allows UNIMPLEMENTED only for unbuilt methods and input the kit cannot tell from valid", () => {
    const unimplemented = { transport: "rest" as const, status: 501, code: 12, detail: "" };
    expect(judge(c("no-fault"), unimplemented, true)).toBeUndefined();
    expect(judge(c("no-fault"), unimplemented, false)).toMatch(/UNIMPLEMENTED/);
    expect(judge(c("invalid-argument"), unimplemented, true)).toMatch(/UNIMPLEMENTED/);
  });
});
