import { toBinary, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import { messageStreamDigest, signRequest, type ActorKey } from "@deai/kit";

/** fetch() with an RFC 9421 signature over method, authority, path and content-digest. */
export async function signedFetch(
  url: string,
  key: ActorKey,
  init: { method?: string; body?: string | Uint8Array; headers?: Record<string, string> } = {},
): Promise<Response> {
  const method = init.method ?? "POST";
  const body = typeof init.body === "string" ? new TextEncoder().encode(init.body) : (init.body ?? new Uint8Array());
  const sig = signRequest({ key, method, url, body });
  return fetch(url, {
    method,
    body: method === "GET" ? undefined : body,
    headers: { "content-type": "application/json", ...sig, ...init.headers },
  });
}

/**
 * The gRPC metadata (as plain headers) that signs a unary call; `url` is the call's full
 * address, `http://<authority>/<package.Service>/<Method>` (the authority is signed).
 */
export function grpcSignature<D extends DescMessage>(
  key: ActorKey,
  url: string,
  schema: D,
  message: MessageShape<D>,
): Record<string, string> {
  return { ...signRequest({ key, method: "POST", url, body: toBinary(schema, message) }) };
}

/** The gRPC metadata that signs a client stream of `messages` to `url` (digest over every message). */
export function grpcStreamSignature<D extends DescMessage>(
  key: ActorKey,
  url: string,
  schema: D,
  messages: Iterable<MessageShape<D>>,
): Record<string, string> {
  return { ...signRequest({ key, method: "POST", url, digest: messageStreamDigest(schema, messages) }) };
}
