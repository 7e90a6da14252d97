// The ingestion benchmark's storage providers in a process of their own: n in-process S3 servers
// (startS3 from @deai/testkit, s3rver) on free ports, driven by the bench over IPC.
//
// Started by bench.ts (child_process.fork, --openssl-legacy-provider, TMPDIR = where the servers
// keep their objects). Sends {type: "ready", servers} once listening, then answers
// {id, op: "stop" | "start", index} and {id, op: "destroy"} with {type: "done", id, error?}.
// The servers are destroyed (data deleted) on "destroy" and when the bench goes away.
import { startS3, type TestS3 } from "@deai/testkit";

export interface ServerInfo {
  readonly endpoint: string;
  readonly accessKey: string;
  readonly secretKey: string;
  readonly region: string;
}

export type HelperRequest = { id: number; op: "stop" | "start"; index: number } | { id: number; op: "destroy" };
export type HelperReply = { type: "ready"; servers: ServerInfo[] } | { type: "done"; id: number; error?: string };

const send = (m: HelperReply): void => void process.send?.(m);

async function main(): Promise<void> {
  const n = Number.parseInt(process.argv[2] ?? "12", 10);
  const servers: TestS3[] = await Promise.all(Array.from({ length: n }, () => startS3({ buckets: ["shards"] })));
  let destroyed: Promise<void> | undefined;
  const destroy = (): Promise<void> => (destroyed ??= Promise.all(servers.map((s) => s.destroy())).then(() => undefined));
  process.on("message", (msg: HelperRequest) => {
    const run = async (): Promise<void> => {
      if (msg.op === "destroy") await destroy();
      else if (msg.op === "stop") await servers[msg.index]!.stop();
      else await servers[msg.index]!.start();
    };
    run().then(
      () => {
        send({ type: "done", id: msg.id });
        if (msg.op === "destroy") process.disconnect();
      },
      (e: unknown) => send({ type: "done", id: msg.id, error: String((e as Error).stack ?? e) }),
    );
  });
  process.on("disconnect", () => void destroy().finally(() => process.exit(0)));
  send({
    type: "ready",
    servers: servers.map((s) => ({ endpoint: s.endpoint, accessKey: s.accessKey, secretKey: s.secretKey, region: s.region })),
  });
}

if (process.send) await main();
