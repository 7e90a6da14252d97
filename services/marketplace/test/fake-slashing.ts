// A stand-in for slashing over its real contract (deai.slashing.v1 GetProviderStatus served by
// connect-node over h2c, what the marketplace's gRPC client speaks): every provider is active
// with `bonded` stake unless told otherwise.
import { create } from "@bufbuild/protobuf";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import http2 from "node:http2";
import type { AddressInfo } from "node:net";

import { MoneySchema } from "@deai/contracts/deai/common/v1/common_pb";
import { GetProviderStatusResponseSchema, ProviderStatus, SlashingService } from "@deai/contracts/deai/slashing/v1/slashing_pb";

export interface FakeSlashing {
  readonly url: string;
  readonly statuses: Map<string, { status: ProviderStatus; bonded: bigint }>;
  close(): Promise<void>;
}

export async function startFakeSlashing(bonded = 10_000_000n, currency = "DEAI"): Promise<FakeSlashing> {
  const statuses = new Map<string, { status: ProviderStatus; bonded: bigint }>();
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
      }),
  });
  const server = http2.createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    statuses,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
