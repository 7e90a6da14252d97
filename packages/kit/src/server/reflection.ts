/**
 * gRPC server reflection (grpc.reflection.v1 and the older v1alpha that many clients still
 * ask for first), so grpcurl, Postman or grpcui can list the services of a server and call
 * them without the proto files. The descriptors are the ones the generated code embeds
 * (@bufbuild/protobuf v2 keeps each file's FileDescriptorProto), so what reflection
 * returns is exactly what the server decodes with.
 */
import {
  create,
  fromBinary,
  toBinary,
  type MessageInitShape,
  type DescEnum,
  type DescExtension,
  type DescFile,
  type DescMessage,
  type DescService,
} from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";

import * as v1 from "@deai/contracts/grpc/reflection/v1/reflection_pb";
import * as v1alpha from "@deai/contracts/grpc/reflection/v1alpha/reflection_pb";

import { bind, type ServiceBinding } from "./service-binding.js";

/** What a reflection answer is built from: every file reachable from the served services. */
class DescriptorIndex {
  readonly byName = new Map<string, DescFile>();
  readonly bySymbol = new Map<string, DescFile>();
  readonly extensions = new Map<string, DescExtension[]>();
  private readonly encoded = new Map<DescFile, Uint8Array>();

  constructor(readonly services: readonly DescService[]) {
    for (const s of services) this.addFile(s.file);
  }

  private addFile(f: DescFile): void {
    if (this.byName.has(f.proto.name)) return;
    this.byName.set(f.proto.name, f);
    const addMessage = (m: DescMessage): void => {
      this.bySymbol.set(m.typeName, f);
      for (const n of m.nestedMessages) addMessage(n);
      for (const e of m.nestedEnums) addEnum(e);
      for (const x of m.nestedExtensions) addExtension(x);
    };
    const addEnum = (e: DescEnum): void => void this.bySymbol.set(e.typeName, f);
    const addExtension = (x: DescExtension): void => {
      this.bySymbol.set(x.typeName, f);
      const list = this.extensions.get(x.extendee.typeName) ?? [];
      list.push(x);
      this.extensions.set(x.extendee.typeName, list);
    };
    for (const m of f.messages) addMessage(m);
    for (const e of f.enums) addEnum(e);
    for (const x of f.extensions) addExtension(x);
    for (const s of f.services) {
      this.bySymbol.set(s.typeName, f);
      for (const m of s.methods) this.bySymbol.set(`${s.typeName}.${m.name}`, f);
    }
    for (const d of f.dependencies) this.addFile(d);
  }

  /** `f` and its transitive dependencies, dependencies first, minus those in `sent`. */
  closure(f: DescFile, sent: Set<DescFile>): Uint8Array[] {
    const out: Uint8Array[] = [];
    const visit = (x: DescFile): void => {
      if (sent.has(x)) return;
      sent.add(x);
      // The requested file goes first: grpcurl and grpc-java read the first one as the answer.
      out.push(this.encode(x));
      for (const d of x.dependencies) visit(d);
    };
    visit(f);
    return out;
  }

  private encode(f: DescFile): Uint8Array {
    let b = this.encoded.get(f);
    if (!b) {
      b = toBinary(FileDescriptorProtoSchema, f.proto);
      this.encoded.set(f, b);
    }
    return b;
  }
}

type Request = v1.ServerReflectionRequest | v1alpha.ServerReflectionRequest;
type Response = v1.ServerReflectionResponse;

/** A request's fields as a plain init (v1 and v1alpha share them field for field). */
function plainRequest(req: Request): MessageInitShape<typeof v1.ServerReflectionRequestSchema> {
  const r = req.messageRequest;
  return {
    host: req.host,
    messageRequest:
      r.case === "fileContainingExtension"
        ? { case: r.case, value: { containingType: r.value.containingType, extensionNumber: r.value.extensionNumber } }
        : r,
  };
}

/** One reflection stream: answers each request in turn; files already sent on it are not sent again. */
async function* answer(index: DescriptorIndex, requests: AsyncIterable<Request>): AsyncGenerator<Response> {
  const sent = new Set<DescFile>();
  for await (const req of requests) {
    const base = { validHost: req.host, originalRequest: plainRequest(req) };
    const error = (code: Code, message: string): Response =>
      create(v1.ServerReflectionResponseSchema, {
        ...base,
        messageResponse: { case: "errorResponse", value: { errorCode: code, errorMessage: message } },
      });
    const files = (f: DescFile | undefined, what: string): Response =>
      f
        ? create(v1.ServerReflectionResponseSchema, {
            ...base,
            messageResponse: { case: "fileDescriptorResponse", value: { fileDescriptorProto: index.closure(f, sent) } },
          })
        : error(Code.NotFound, `${what} not found`);
    const r = req.messageRequest;
    switch (r.case) {
      case "listServices":
        yield create(v1.ServerReflectionResponseSchema, {
          ...base,
          messageResponse: { case: "listServicesResponse", value: { service: index.services.map((s) => ({ name: s.typeName })) } },
        });
        break;
      case "fileByFilename":
        yield files(index.byName.get(r.value), `file ${JSON.stringify(r.value)}`);
        break;
      case "fileContainingSymbol":
        yield files(index.bySymbol.get(r.value), `symbol ${JSON.stringify(r.value)}`);
        break;
      case "fileContainingExtension": {
        const x = index.extensions.get(r.value.containingType)?.find((e) => e.number === r.value.extensionNumber);
        yield files(x?.file, `extension ${r.value.extensionNumber} of ${JSON.stringify(r.value.containingType)}`);
        break;
      }
      case "allExtensionNumbersOfType": {
        const known = index.bySymbol.has(r.value);
        yield known
          ? create(v1.ServerReflectionResponseSchema, {
              ...base,
              messageResponse: {
                case: "allExtensionNumbersResponse",
                value: { baseTypeName: r.value, extensionNumber: (index.extensions.get(r.value) ?? []).map((e) => e.number) },
              },
            })
          : error(Code.NotFound, `type ${JSON.stringify(r.value)} not found`);
        break;
      }
      default:
        yield error(Code.InvalidArgument, "the request names no message_request");
    }
  }
}

/** Re-types a v1 response as the v1alpha message (the two are the same schema under another package). */
function asAlpha(r: Response): v1alpha.ServerReflectionResponse {
  // Same field numbers and types: the v1 bytes are a valid v1alpha message.
  return fromBinary(v1alpha.ServerReflectionResponseSchema, toBinary(v1.ServerReflectionResponseSchema, r));
}

/** The reflection services (v1 and v1alpha) describing `services` (and themselves). */
export function reflectionBindings(services: readonly DescService[]): ServiceBinding[] {
  const index = new DescriptorIndex([...services, v1.ServerReflection, v1alpha.ServerReflection]);
  return [
    bind(v1.ServerReflection, {
      serverReflectionInfo: (requests: AsyncIterable<v1.ServerReflectionRequest>) => answer(index, requests),
    }),
    bind(v1alpha.ServerReflection, {
      serverReflectionInfo: async function* (requests: AsyncIterable<v1alpha.ServerReflectionRequest>) {
        for await (const r of answer(index, requests)) yield asAlpha(r);
      },
    }),
  ];
}
