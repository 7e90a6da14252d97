// A stand-in for slashing over its real contract (deai.slashing.v1 served by connect-node over
// h2c, what the marketplace's gRPC clients speak): GetProviderStatus answers every provider
// active with `bonded` stake unless told otherwise; SubmitEvidence verifies with the real
// verifier of @deai/proofs (what slashing runs), is idempotent by evidence id, and can be told
// to fail the next calls with UNAVAILABLE, before or after accepting (an answer lost on the way).
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import http2 from "node:http2";
import type { AddressInfo } from "node:net";

import { MoneySchema } from "@deai/contracts/deai/common/v1/common_pb";
import {
  EvidenceKind,
  EvidenceSchema,
  GetProviderStatusResponseSchema,
  ProviderStatus,
  SlashingService,
  SubmitEvidenceResponseSchema,
} from "@deai/contracts/deai/slashing/v1/slashing_pb";
import { ProofError, verifyEvidence } from "@deai/proofs";

export interface FakeSlashing {
  readonly url: string;
  readonly statuses: Map<string, { status: ProviderStatus; bonded: bigint }>;
  /** Evidence accepted, by id: the provider accused. */
  readonly evidence: Map<string, string>;
  /** SubmitEvidence calls received. */
  readonly calls: { n: number };
  /** Plan for the next SubmitEvidence calls: "down" fails before, "lost" accepts then fails. */
  readonly plan: ("down" | "lost" | "refuse")[];
  close(): Promise<void>;
}

export async function startFakeSlashing(bonded = 10_000_000n, currency = "DEAI"): Promise<FakeSlashing> {
  const statuses = new Map<string, { status: ProviderStatus; bonded: bigint }>();
  const evidence = new Map<string, string>();
  const calls = { n: 0 };
  const plan: ("down" | "lost" | "refuse")[] = [];
  const handler = connectNodeAdapter({
    routes: (router) =>
      router.service(SlashingService, {
        getProviderStatus: (req) => {
          const s = statuses.get(req.providerId) ?? { status: ProviderStatus.ACTIVE, bonded };
          return create(GetProviderStatusResponseSchema, {
            providerId: req.providerId,
            status: s.status,
            bonded: create(MoneySchema, { currency, micros: s.bonded }),
          });
        },
        submitEvidence: (req) => {
          calls.n++;
          const next = plan.shift();
          if (next === "down") throw new ConnectError("slashing is restarting", Code.Unavailable);
          if (next === "refuse") throw new ConnectError("evidence does not verify: refused as planned", Code.InvalidArgument);
          if (req.evidence.case !== "equivocation") throw new ConnectError("only equivocation here", Code.Unimplemented);
          const env = (e: typeof req.evidence.value.first) => ({
            payloadType: e!.payloadType,
            payload: e!.payload,
            signatures: e!.signatures.map((s) => ({ keyid: s.keyid, sig: s.sig })),
          });
          let v;
          try {
            v = verifyEvidence(
              { kind: "equivocation", first: env(req.evidence.value.first), second: env(req.evidence.value.second) },
              { samplers: [], quorumThreshold: 2, operators: [], countersigners: [], checkers: [], minMissedHeartbeats: 1 },
            );
          } catch (e) {
            if (e instanceof ProofError) throw new ConnectError(`evidence does not verify: ${e.message}`, Code.InvalidArgument);
            throw e;
          }
          const duplicate = evidence.has(v.evidenceId);
          evidence.set(v.evidenceId, v.provider);
          if (next === "lost") throw new ConnectError("connection reset after commit", Code.Unavailable);
          return create(SubmitEvidenceResponseSchema, {
            evidence: create(EvidenceSchema, {
              evidenceId: v.evidenceId,
              kind: EvidenceKind.EQUIVOCATION,
              providerId: v.provider,
              slashId: `slash-${v.evidenceId.slice(0, 8)}`,
            }),
            duplicate,
          });
        },
      }),
  });
  const server = http2.createServer(handler);
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on("session", (s) => (sessions.add(s), s.once("close", () => sessions.delete(s))));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    statuses,
    evidence,
    calls,
    plan,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sessions) s.destroy();
        server.close(() => resolve());
      }),
  };
}
