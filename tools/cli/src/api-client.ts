// The REST APIs of the DeAI OS services as the CLI uses them: plain GETs, RFC 9421-signed
// JSON POSTs, streamed signed PUTs and streamed GETs (node:http, so a body streams from a
// file with its Content-Length and backpressure, and never sits in memory whole).
import { request as httpRequest, type IncomingMessage } from "node:http";
import { request as httpsRequest } from "node:https";
import type { Readable } from "node:stream";

import type { ActorKey } from "./actor-key.js";
import { signHeaders } from "./actor-key.js";

/** An HTTP error from a service, with its `{"code","message"}` body. */
export class ApiError extends Error {
  override readonly name = "ApiError";
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** The service could not be reached, or the connection broke before a full response. */
export class Unreachable extends Error {
  override readonly name = "Unreachable";
}

export class ApiClient {
  readonly server: string;

  /** `service` names the service in messages ("the ledger", "the ingestion service"). */
  constructor(
    server: string,
    readonly service: string,
  ) {
    this.server = server.replace(/\/+$/, "");
  }

  async getJson<T>(path: string): Promise<T> {
    return this.parse<T>(await this.send(path, { method: "GET" }));
  }

  async getText(path: string): Promise<string> {
    const res = await this.send(path, { method: "GET" });
    const text = await res.text();
    if (!res.ok) throw new ApiError(res.status, String(res.status), text.trim());
    return text;
  }

  /** The service's authority (host[:port] of its URL): what signatures name as `@authority`. */
  get authority(): string {
    return new URL(this.server).host.toLowerCase();
  }

  /** POSTs a JSON body signed by `key` (RFC 9421 over method, authority, path and content-digest). */
  async postSigned<T>(path: string, body: unknown, key: ActorKey): Promise<T> {
    const bytes = new TextEncoder().encode(JSON.stringify(body));
    const headers = { "content-type": "application/json", ...(await signHeaders(key, "POST", this.authority, path, bytes)) };
    return this.parse<T>(await this.send(path, { method: "POST", body: bytes, headers }));
  }

  /**
   * Sends `body` (exactly `length` bytes) with the given headers and returns the JSON answer.
   * `onBytes` sees each chunk as it is handed to the socket.
   */
  async putStream<T>(
    path: string,
    headers: Record<string, string>,
    body: Readable,
    length: number,
    onBytes?: (n: number) => void,
  ): Promise<T> {
    const url = new URL(this.server + path);
    const send = url.protocol === "https:" ? httpsRequest : httpRequest;
    const res = await new Promise<IncomingMessage>((resolve, reject) => {
      const req = send(url, {
        method: "PUT",
        headers: { ...headers, "content-type": "application/octet-stream", "content-length": String(length) },
      });
      const broke = (e: Error): void => {
        body.destroy();
        reject(this.unreachable(e));
      };
      req.once("response", resolve);
      req.once("error", broke);
      body.once("error", (e) => {
        req.destroy(e);
        reject(e);
      });
      body.on("data", (chunk: Buffer) => {
        onBytes?.(chunk.length);
        if (!req.write(chunk)) {
          body.pause();
          req.once("drain", () => body.resume());
        }
      });
      body.once("end", () => req.end());
    });
    const chunks: Buffer[] = [];
    try {
      for await (const c of res) chunks.push(c as Buffer);
    } catch (e) {
      throw this.unreachable(e as Error);
    }
    return this.parseBody<T>(res.statusCode ?? 0, url.href, Buffer.concat(chunks).toString("utf8"));
  }

  /** A streamed GET; throws ApiError for a non-2xx answer. */
  async getStream(path: string, headers: Record<string, string> = {}): Promise<Response> {
    const res = await this.send(path, { method: "GET", headers });
    if (!res.ok) await this.parse(res);
    return res;
  }

  /** Wraps a network failure in a message naming the service. */
  unreachable(e: Error): Unreachable {
    const cause = (e as { cause?: { message?: string; code?: string } }).cause;
    const why = cause?.message ?? cause?.code ?? (e as NodeJS.ErrnoException).code ?? e.message;
    return new Unreachable(`cannot reach ${this.service} at ${this.server}: ${why}`, { cause: e });
  }

  private async send(path: string, init: RequestInit): Promise<Response> {
    try {
      return await fetch(`${this.server}${path}`, init);
    } catch (e) {
      throw this.unreachable(e as Error);
    }
  }

  private async parse<T>(res: Response): Promise<T> {
    let text: string;
    try {
      text = await res.text();
    } catch (e) {
      throw this.unreachable(e as Error);
    }
    return this.parseBody<T>(res.status, res.url, text);
  }

  private parseBody<T>(status: number, url: string, text: string): T {
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      throw new ApiError(status, String(status), `HTTP ${status} from ${url}: ${text.trim().slice(0, 200)}`);
    }
    if (status < 200 || status > 299) {
      const b = body as { code?: string; message?: string };
      throw new ApiError(status, b.code ?? String(status), `${b.code ?? "error"} (HTTP ${status}): ${b.message ?? text}`);
    }
    return body as T;
  }
}
