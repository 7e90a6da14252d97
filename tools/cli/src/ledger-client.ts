// The ledger's REST API as the CLI uses it: plain GETs, and RFC 9421-signed POSTs.
import type { ActorKey } from "./actor-key.js";
import { signHeaders } from "./actor-key.js";

/** An HTTP error from the ledger, with its `{"code","message"}` body. */
export class LedgerError extends Error {
  override readonly name = "LedgerError";
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export class LedgerClient {
  readonly server: string;

  constructor(server: string) {
    this.server = server.replace(/\/+$/, "");
  }

  async getJson<T>(path: string): Promise<T> {
    return this.parse<T>(await this.send(path, { method: "GET" }));
  }

  async getText(path: string): Promise<string> {
    const res = await this.send(path, { method: "GET" });
    const text = await res.text();
    if (!res.ok) throw new LedgerError(res.status, String(res.status), text.trim());
    return text;
  }

  /** POSTs a JSON body signed by `key` (RFC 9421 over method, path and content-digest). */
  async postSigned<T>(path: string, body: unknown, key: ActorKey): Promise<T> {
    const bytes = new TextEncoder().encode(JSON.stringify(body));
    const headers = { "content-type": "application/json", ...(await signHeaders(key, "POST", path, bytes)) };
    return this.parse<T>(await this.send(path, { method: "POST", body: bytes, headers }));
  }

  private async send(path: string, init: RequestInit): Promise<Response> {
    try {
      return await fetch(`${this.server}${path}`, init);
    } catch (e) {
      const cause = (e as { cause?: { message?: string } }).cause?.message;
      throw new Error(`cannot reach the ledger at ${this.server}: ${cause ?? (e as Error).message}`, { cause: e });
    }
  }

  private async parse<T>(res: Response): Promise<T> {
    const text = await res.text();
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      throw new LedgerError(res.status, String(res.status), `HTTP ${res.status} from ${res.url}: ${text.trim().slice(0, 200)}`);
    }
    if (!res.ok) {
      const b = body as { code?: string; message?: string };
      throw new LedgerError(res.status, b.code ?? String(res.status), `${b.code ?? "error"} (HTTP ${res.status}): ${b.message ?? text}`);
    }
    return body as T;
  }
}
