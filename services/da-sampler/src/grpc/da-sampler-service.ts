import type { HandlerContext } from "@connectrpc/connect";

import { DaSamplerService } from "@deai/contracts/deai/da/v1/da_pb";
import { bind, requireActor, type ServiceBinding } from "@deai/kit";

import type { SamplingService } from "../app/sampling-service.js";

/** deai.da.v1.DaSamplerService over gRPC, Connect and REST: decode, call the app, return. */
export function daSamplerService(app: SamplingService): ServiceBinding {
  return bind(DaSamplerService, {
    getProviderAvailability: async (req) =>
      app.availability(
        req.providerId,
        req.window ? Number(req.window.seconds) * 1000 + Math.floor(req.window.nanos / 1e6) : undefined,
        req.asOfTreeSize,
      ),
    listAttestations: async (req) => app.attestations.list(req),
    getAttestation: async (req) => ({ attestation: await app.attestations.get(req.attestationId) }),
    requestSample: async (req, ctx: HandlerContext) =>
      app.requestSample(requireActor(ctx), {
        datasetId: req.datasetId,
        ...(req.slot !== undefined ? { slot: req.slot } : {}),
        samples: req.samples,
        stripes: req.stripes,
      }),
    getSamplingPolicy: async (req) => {
      const target: { missingFraction?: number; epsilon?: number } = {};
      if (req.missingFraction !== undefined) target.missingFraction = req.missingFraction;
      if (req.epsilon !== undefined) target.epsilon = req.epsilon;
      return app.policy(target);
    },
  });
}
