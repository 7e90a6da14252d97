/**
 * Hostile payloads for every RPC, generated from its request descriptor and REST rules:
 * one case per (RPC, field, kind, transport) — no combinations — so the count grows with
 * the contract, not exponentially. Signed methods get valid signatures over the hostile
 * bytes, so what is tested is the payload check, not the signature check.
 */
import type { JsonObject, JsonValue } from "@bufbuild/protobuf";

import type { RestRoute } from "@deai/kit";

import type { AbuseCase, CaseKind, Expectation, Wire } from "./abuse-case.js";
import { grpcBytes, grpcSignature, restRequest, SURROGATE_STAND_IN, type MethodTarget, type Signer } from "./method-requests.js";
import { outOfRange, plant, requestSlots, type FieldSlot } from "./request-fields.js";
import { sendChunked, sendConnect, sendGrpc, sendGrpcWeb, sendRest, type HttpRequestSpec, type Outcome } from "./transports.js";

export interface PayloadOptions {
  readonly sign: Signer;
  /** The service's body limit (REST body, gRPC message). */
  readonly maxBodyBytes: number;
  /** Size of the huge-string case. @default 1 MiB */
  readonly hugeStringBytes?: number;
}

// Field 1, length-delimited, 100 bytes announced, 2 sent: no decoder can read past it.
const TRUNCATED = Uint8Array.from([0x0a, 0x64, 0x01, 0x02]);
// Field 1 with wire type 7, which does not exist.
const BAD_WIRE_TYPE = Uint8Array.from([0x0f, 0x00]);
const NON_CANONICAL_IN_PATH = ["%20", "0x10", "+1", "01", "1e1", "1.0"];
// In a query "+" means a space; %2B is the plus sign.
const NON_CANONICAL_IN_QUERY = ["%20", "0x10", "%2B1", "01", "1e1", "1.0"];

// Well-known types whose JSON accepts numbers or anything: no wrong type to give them.
const LENIENT_WKT = /^google\.protobuf\.(Value|Struct|ListValue|Any|\w+Value)$/;

/** A protobuf message of `size` bytes: one unknown length-delimited field (decodable, just too big). */
function oversizedMessage(size: number): Uint8Array {
  const tag = [0xfa, 0xff, 0x07]; // field 16383, wire type 2
  const len: number[] = [];
  let n = size;
  do {
    len.push((n & 0x7f) | (n > 0x7f ? 0x80 : 0));
    n >>>= 7;
  } while (n > 0);
  const out = new Uint8Array(tag.length + len.length + size);
  out.set(tag, 0);
  out.set(len, tag.length);
  return out;
}

/** A JSON scalar as URL or label text. */
const textOf = (v: JsonValue): string => (typeof v === "string" ? v : JSON.stringify(v));

const topKey = (s: FieldSlot): string => ("key" in s.steps[0]! ? s.steps[0].key : "");

function pathRoute(t: MethodTarget, s: FieldSlot): RestRoute | undefined {
  return s.steps.length === 1 ? t.routes.find((r) => r.pathFields.includes(s.field)) : undefined;
}

function isPathField(t: MethodTarget, s: FieldSlot): boolean {
  return t.routes.some((r) => r.pathFields.includes(s.field)) && s.steps.length >= 1;
}

const bodyRoute = (t: MethodTarget): RestRoute | undefined =>
  t.routes.find((r) => r.verb !== "GET" && r.verb !== "DELETE" && r.body !== "");
const queryRoute = (t: MethodTarget): RestRoute | undefined => t.routes.find((r) => r.verb === "GET");

/** Every payload case of `t`. */
export function payloadCases(t: MethodTarget, o: PayloadOptions): AbuseCase[] {
  const cases: AbuseCase[] = [];
  const add = (kind: CaseKind, expect: Expectation, label: string, send: (w: Wire) => Promise<Outcome>, alsoAccept?: number[]): void => {
    cases.push({ label: `${t.grpcPath} ${label}`, method: t.method, kind, expect, send, ...(alsoAccept ? { alsoAccept } : {}) });
  };
  const sign = t.signed ? o.sign : undefined;
  const unary = t.kind === "unary";
  const rest = (spec: HttpRequestSpec | undefined) => (spec ? (w: Wire) => sendRest(w.baseUrl, spec) : undefined);
  const grpcSend = (bytes: Uint8Array) => (w: Wire) => sendGrpc(w.grpc, t.grpcPath, t.kind, bytes, grpcSignature(t, bytes, sign));
  const connectSend = (bytes: Uint8Array, json: boolean) => (w: Wire) =>
    sendConnect(w.baseUrl, t.grpcPath, { streaming: !unary, json, body: bytes, headers: grpcSignature(t, bytes, sign) });

  // Undecodable protobuf, on every protobuf transport.
  add("undecodable-protobuf", "invalid-argument", "grpc: truncated protobuf", grpcSend(TRUNCATED));
  add("undecodable-protobuf", "invalid-argument", "grpc: protobuf with wire type 7", grpcSend(BAD_WIRE_TYPE));
  add("undecodable-protobuf", "invalid-argument", "connect: truncated protobuf", connectSend(TRUNCATED, false));
  add("undecodable-protobuf", "invalid-argument", "grpc-web: truncated protobuf", (w) =>
    sendGrpcWeb(w.baseUrl, t.grpcPath, TRUNCATED, grpcSignature(t, TRUNCATED, sign)),
  );

  // Malformed JSON and a body that is not an object.
  const br = bodyRoute(t);
  for (const [what, raw] of [
    ["malformed JSON", '{"'],
    ["a JSON array body", "[1]"],
  ] as const) {
    const bytes = Buffer.from(raw);
    const kind = what === "malformed JSON" ? "malformed-json" : "wrong-json-type";
    const send = br ? rest(restRequest(br, t.seed, { sign, rawBody: bytes })) : undefined;
    if (send) add(kind, "invalid-argument", `rest ${br!.verb} ${br!.template}: ${what}`, send);
    if (unary) add(kind, "invalid-argument", `connect-json: ${what}`, connectSend(bytes, true));
  }

  const hugeBytes = o.hugeStringBytes ?? 1024 * 1024;
  for (const slot of requestSlots(t.method.input)) {
    const pr = pathRoute(t, slot);
    const inPath = isPathField(t, slot);
    const qr = queryRoute(t);
    // Plants `value` and sends it in the REST form that can carry it (path, query or body).
    const restWith = (value: JsonValue, raw?: string): ((w: Wire) => Promise<Outcome>) | undefined => {
      if (pr) return rest(restRequest(pr, t.seed, { sign, rawPath: { [slot.field.name]: raw ?? encodeURIComponent(textOf(value)) } }));
      if (inPath) return undefined;
      if (qr && slot.topLevelScalar) {
        const seed = { ...t.seed };
        delete seed[topKey(slot)];
        return rest(restRequest(qr, seed, { rawQuery: `${slot.field.jsonName}=${raw ?? encodeURIComponent(textOf(value))}` }));
      }
      return br ? rest(restRequest(br, plant(t.seed, slot, value), { sign })) : undefined;
    };
    const restLabel = (): string => {
      const r = pr ?? (inPath ? undefined : qr && slot.topLevelScalar ? qr : br);
      const where = pr ? "path" : r === qr ? "query" : "body";
      return r ? `rest ${r.verb} ${r.template} (${where})` : "rest";
    };

    if (slot.type === "string") {
      for (const [kind, restValue, raw, grpcValue, what] of [
        ["nul", "a\u0000b", "a%00b", "a\u0000b", "NUL"],
        ["lone-surrogate", "a\ud800b", "a%ED%A0%80b", `a${SURROGATE_STAND_IN}b`, "a lone surrogate"],
      ] as const) {
        const send = restWith(restValue, raw);
        if (send) add(kind, "invalid-argument", `${restLabel()}: ${what} in ${slot.label}`, send);
        const bytes = grpcBytes(t.method, plant(t.seed, slot, grpcValue));
        // Re-encoding a message with invalid UTF-8 cannot reproduce the signed digest.
        add(
          kind,
          "invalid-argument",
          `grpc: ${what} in ${slot.label}`,
          grpcSend(bytes),
          t.signed && kind === "lone-surrogate" ? [16] : undefined,
        );
      }
      if (!slot.mapKey) {
        const huge = "a".repeat(hugeBytes);
        // Sampled: one transport per field (REST where a body can carry it, else gRPC); each case moves 1 MiB.
        if (br && !inPath)
          add(
            "huge-string",
            "no-fault",
            `rest ${br.verb} ${br.template}: 1 MiB string in ${slot.label}`,
            rest(restRequest(br, plant(t.seed, slot, huge), { sign }))!,
          );
        else
          add("huge-string", "no-fault", `grpc: 1 MiB string in ${slot.label}`, grpcSend(grpcBytes(t.method, plant(t.seed, slot, huge))));
      }
    }

    if (slot.type === "integer" && slot.scalar !== undefined) {
      const value = outOfRange(slot.scalar);
      const planted = slot.mapKey ? textOf(value) : value;
      const send = restWith(planted);
      if (send) add("int-out-of-range", "invalid-argument", `${restLabel()}: ${textOf(value)} in ${slot.label}`, send);
      if (unary)
        add(
          "int-out-of-range",
          "invalid-argument",
          `connect-json: ${textOf(value)} in ${slot.label}`,
          connectSend(Buffer.from(JSON.stringify(plant(t.seed, slot, planted))), true),
        );
      if (pr || (!inPath && qr && slot.topLevelScalar)) {
        for (const raw of pr ? NON_CANONICAL_IN_PATH : NON_CANONICAL_IN_QUERY) {
          add("non-canonical-int", "invalid-argument", `${restLabel()}: ${JSON.stringify(raw)} as ${slot.label}`, restWith(0, raw)!);
        }
      }
    }

    const repeatable = slot.topLevelScalar && slot.field.fieldKind !== "list";
    if (repeatable && qr && !inPath) {
      const v = slot.type === "bool" ? "true" : slot.type === "string" || slot.type === "bytes" ? "a" : slot.type === "enum" ? "0" : "1";
      const seed = { ...t.seed };
      delete seed[topKey(slot)];
      const spec = restRequest(qr, seed, { rawQuery: `${slot.field.jsonName}=${v}&${slot.field.jsonName}=${v}` });
      if (spec) add("repeated-query", "invalid-argument", `rest GET ${qr.template}: ${slot.field.jsonName} given twice`, rest(spec)!);
    }

    const wrongTypeable =
      !slot.mapKey && !(slot.type === "wkt" && slot.field.fieldKind === "message" && LENIENT_WKT.test(slot.field.message.typeName));
    if (wrongTypeable && !inPath) {
      const wrong: JsonValue = slot.type === "container" ? "wrong" : slot.type === "wkt" ? 12 : { wrong: true };
      const json: JsonObject = plant(t.seed, slot, wrong);
      const what = `${JSON.stringify(wrong)} as ${slot.label}`;
      if (br) add("wrong-json-type", "invalid-argument", `rest ${br.verb} ${br.template}: ${what}`, rest(restRequest(br, json, { sign }))!);
      if (unary) add("wrong-json-type", "invalid-argument", `connect-json: ${what}`, connectSend(Buffer.from(JSON.stringify(json)), true));
    }
  }
  return cases;
}

/**
 * Bodies above the limit: a declared content-length on every REST body route; a chunked
 * body, a gRPC message and a Connect message on the first route and method of each binding
 * (sampled: each moves the limit's worth of bytes).
 */
export function oversizedCases(t: MethodTarget, o: PayloadOptions, firstOfBinding: boolean): AbuseCase[] {
  const cases: AbuseCase[] = [];
  const over = o.maxBodyBytes + 1;
  // A server may refuse an oversized request for lacking a signature before reading it; fine too.
  const add = (label: string, send: (w: Wire) => Promise<Outcome>): void =>
    void cases.push({
      label: `${t.grpcPath} ${label}`,
      method: t.method,
      kind: "oversized-body",
      expect: "too-large",
      alsoAccept: [16],
      send,
    });
  const br = bodyRoute(t);
  if (br) {
    const spec = restRequest(br, t.seed)!;
    add(`rest ${br.verb} ${br.template}: content-length ${over}`, (w) =>
      sendRest(w.baseUrl, { ...spec, headers: { ...spec.headers, "content-length": over }, headersOnly: true }),
    );
    if (firstOfBinding) {
      const { "content-length": _drop, ...headers } = spec.headers ?? {};
      // Well past the limit, so the client is still sending when the server refuses.
      const total = 2 * o.maxBodyBytes + 1;
      add(`rest ${br.verb} ${br.template}: chunked body of ${total}+ bytes`, (w) =>
        sendChunked(w.baseUrl, { method: spec.method, target: spec.target, headers, total }),
      );
    }
  }
  if (firstOfBinding && t.kind === "unary") {
    const big = oversizedMessage(over);
    add(`grpc: message of ${big.length} bytes`, (w) => sendGrpc(w.grpc, t.grpcPath, t.kind, big, {}));
    add(`connect: message of ${big.length} bytes`, (w) => sendConnect(w.baseUrl, t.grpcPath, { streaming: false, json: false, body: big }));
  }
  return cases;
}
