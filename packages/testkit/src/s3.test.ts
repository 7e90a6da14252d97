// The in-process S3 server behaves like S3 when an abort races a part upload: the abort wins,
// a part still being sent (or sent later) fails with NoSuchUpload, nothing of the upload stays,
// and the server keeps serving.
import { request } from "node:http";

import { startS3, type TestS3 } from "./s3.js";

let s3: TestS3;

beforeAll(async () => {
  s3 = await startS3({ buckets: ["b"] });
});
afterAll(async () => {
  await s3?.destroy();
});

/** One raw S3 request (s3rver accepts anonymous requests). */
async function s3Request(method: string, path: string, body?: Buffer): Promise<{ status: number; text: string }> {
  const res = await fetch(`${s3.endpoint}${path}`, { method, ...(body ? { body } : {}) });
  return { status: res.status, text: await res.text() };
}

async function initiate(key: string): Promise<string> {
  const r = await s3Request("POST", `/b/${key}?uploads`);
  expect(r.status).toBe(200);
  return /<UploadId>([^<]+)<\/UploadId>/.exec(r.text)![1]!;
}

/** Starts a part PUT of `length` bytes, sends `first` of them, and holds the request open. */
function heldPart(key: string, uploadId: string, length: number, first: number) {
  const req = request(`${s3.endpoint}/b/${key}?uploadId=${uploadId}&partNumber=1`, {
    method: "PUT",
    headers: { "content-length": length },
  });
  const response = new Promise<{ status: number; text: string }>((resolve, reject) => {
    req.on("response", (res) => {
      let text = "";
      res.setEncoding("utf8").on("data", (d: string) => (text += d));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, text }));
    });
    req.on("error", reject);
  });
  req.write(Buffer.alloc(first, 1));
  return { response, finish: () => req.end(Buffer.alloc(length - first, 2)) };
}

const settle = (ms: number) => new Promise((r) => setTimeout(r, ms));

it("an abort while a part is half-written wins: the late part fails with NoSuchUpload, nothing stays, the server serves on", async () => {
  for (let round = 0; round < 20; round++) {
    const key = `obj-${round}`;
    const id = await initiate(key);
    const part = heldPart(key, id, 1 << 20, 256 * 1024);
    await settle(20);
    const abort = await s3Request("DELETE", `/b/${key}?uploadId=${id}`);
    expect(abort.status).toBe(204);
    part.finish();
    const late = await part.response.catch((e: Error) => ({ status: 0, text: e.message }));
    // S3 answers 404 NoSuchUpload; a reset connection is also a failed part, never a stored one.
    if (late.status !== 0) {
      expect(late.status).toBe(404);
      expect(late.text).toMatch(/NoSuchUpload/);
    }
    expect(await s3.multipartUploads("b")).toEqual([]);
    // The upload is gone for good: another part, a completion and a second abort all say so.
    expect((await s3Request("PUT", `/b/${key}?uploadId=${id}&partNumber=2`, Buffer.from("x"))).status).toBe(404);
    expect((await s3Request("DELETE", `/b/${key}?uploadId=${id}`)).status).toBe(404);
    expect(await s3.multipartUploads("b")).toEqual([]);
  }
  // Still serving.
  expect((await s3Request("PUT", "/b/after", Buffer.from("hello"))).status).toBe(200);
  expect((await s3Request("GET", "/b/after")).text).toBe("hello");
}, 60_000);

it("a part arriving after the abort (never started before it) fails with NoSuchUpload and recreates nothing", async () => {
  const id = await initiate("late");
  expect((await s3Request("DELETE", `/b/late?uploadId=${id}`)).status).toBe(204);
  const r = await s3Request("PUT", `/b/late?uploadId=${id}&partNumber=1`, Buffer.alloc(1000));
  expect(r.status).toBe(404);
  expect(r.text).toMatch(/NoSuchUpload/);
  expect(await s3.multipartUploads("b")).toEqual([]);
});
