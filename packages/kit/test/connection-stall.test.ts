// A connection whose next request arrived while the server's event loop was stalled is not
// closed as idle: the idle verdict is judged again after the sockets were polled.
import { spawn } from "node:child_process";

import { SystemService } from "@deai/contracts/deai/system/v1/system_pb";
import { MemoryNonceStore, Server, bind, createLogger } from "@deai/kit";

// A client in its own process (it must send while this process is stalled): one keep-alive
// request, then a second on the same socket after `gapMs`; prints the outcome of each.
const CLIENT = `
const http = require("node:http");
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
const get = () => new Promise((resolve) => {
  const req = http.get({ host: "127.0.0.1", port: Number(process.argv[1]), path: "/healthz", agent }, (res) => {
    res.resume(); res.on("end", () => resolve(String(res.statusCode) + (req.reusedSocket ? " reused" : " fresh")));
  });
  req.on("error", (e) => resolve(e.code + (req.reusedSocket ? " reused" : " fresh")));
});
(async () => {
  const a = await get();
  process.stdout.write("ready\\n");
  await new Promise((r) => setTimeout(r, Number(process.argv[2])));
  const b = await get();
  process.stdout.write(JSON.stringify([a, b]) + "\\n");
  agent.destroy();
})();
`;

function busyWait(ms: number): void {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    /* the stall */
  }
}

test("a request that arrives during an event-loop stall past the idle timeout is answered", async () => {
  const server = new Server({
    host: "127.0.0.1",
    port: 0,
    bindings: [bind(SystemService, { getInfo: () => ({ service: "stall", version: "0", schema: "none", migrations: [] }) })],
    logger: createLogger({ service: "stall", level: "silent" }),
    signing: { nonces: new MemoryNonceStore(), maxAgeS: 300 },
    readiness: async () => ({ ready: true, checks: {} }),
    title: "stall",
    version: "0",
    limits: { idleTimeoutMs: 2000, headersTimeoutMs: 2000 },
  });
  const port = await server.listen();
  try {
    // The client's second request is sent 300 ms into idleness, while this process is stalled
    // for 2,500 ms inside an I/O callback (so timers run before the next poll): when it wakes,
    // the connection is idle past its 2,000 ms and the request's bytes are still unread.
    // Before the fix the sweep closed it and the client saw ECONNRESET on the reused socket.
    const child = spawn(process.execPath, ["-e", CLIENT, String(port), "300"], { stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    let stalled = false;
    const lines = new Promise<string[]>((resolve) => {
      child.stdout.on("data", (b: Buffer) => {
        out += b.toString();
        if (out.includes("ready\n") && !stalled) {
          stalled = true;
          busyWait(2500);
        }
        const last = out.split("\n").find((l) => l.startsWith("["));
        if (last) resolve(JSON.parse(last) as string[]);
      });
    });
    expect(await lines).toEqual(["200 fresh", "200 reused"]);
  } finally {
    await server.drain(Date.now() + 1000);
  }
}, 20_000);
