import { toBinary, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import { signRequest, type ActorKey } from "@deai/kit";

/** fetch() with an RFC 9421 signature over method, path and content-digest. */
export async function signedFetch(
  url: string,
  key: ActorKey,
  init: { method?: string; body?: string | Uint8Array; headers?: Record<string, string> } = {},
): Promise<Response> {
  const method = init.method ?? "POST";
  const body = typeof init.body === "string" ? new TextEncoder().encode(init.body) : (init.body ?? new Uint8Array());
  const sig = signRequest({ key, method, path: new URL(url).pathname, body });
  return fetch(url, {
    method,
    body: method === "GET" ? undefined : body,
    headers: { "content-type": "application/json", ...sig, ...init.headers },
  });
}

/** The gRPC metadata (as plain headers) that signs a unary call to `/<service>/<method>`. */
export function grpcSignature<D extends DescMessage>(
  key: ActorKey,
  path: string,
  schema: D,
  message: MessageShape<D>,
): Record<string, string> {
  return { ...signRequest({ key, method: "POST", path, body: toBinary(schema, message) }) };
}
