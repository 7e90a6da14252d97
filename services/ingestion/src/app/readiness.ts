/**
 * Ingestion's readiness: able to take an upload to its end. That needs storage providers
 * (at least INGESTION_READY_MIN_PROVIDERS answering their cached probe) and a ledger that is
 * itself ready (its grpc.health.v1 answers SERVING for the LedgerService: a ledger that
 * cannot sign leaves every upload waiting for a receipt).
 */
import { create } from "@bufbuild/protobuf";

import { LedgerService } from "@deai/contracts/deai/ledger/v1/ledger_pb";
import { Health, HealthCheckRequestSchema, HealthCheckResponse_ServingStatus } from "@deai/contracts/grpc/health/v1/health_pb";
import { serviceClient, type Clock, type ProviderRegistry } from "@deai/kit";

export interface ReadinessOptions {
  registry: ProviderRegistry;
  minProviders: number;
  ledgerUrl: string | undefined;
  probeTimeoutMs: number;
  /** A ledger answer is reused this long (readiness is polled by kubelets and Watch streams). */
  probeTtlMs: number;
  clock: Clock;
}

/** The app's readiness checks: `providers` and `ledger`, each "ok" or what is wrong. */
export function ingestionReadiness(o: ReadinessOptions): () => Promise<Record<string, string>> {
  const health = o.ledgerUrl ? serviceClient(Health, { baseUrl: o.ledgerUrl }) : undefined;
  let cached: { at: number; answer: Promise<string> } | undefined;
  const ledger = (): Promise<string> => {
    if (!health) return Promise.resolve("INGESTION_LEDGER_URL is not set: uploads cannot be anchored");
    const now = o.clock.nowMs();
    if (cached && now - cached.at < o.probeTtlMs) return cached.answer;
    const answer = health
      .check(create(HealthCheckRequestSchema, { service: LedgerService.typeName }), { timeoutMs: o.probeTimeoutMs })
      .then(
        (r) =>
          r.status === HealthCheckResponse_ServingStatus.SERVING ? "ok" : `not serving (${HealthCheckResponse_ServingStatus[r.status]})`,
        (e: unknown) => `unreachable: ${(e as Error).message}`,
      );
    cached = { at: now, answer };
    return answer;
  };
  const providers = async (): Promise<string> => {
    const all = o.registry.all;
    const live = (await Promise.all(all.map((p) => p.ping()))).filter(Boolean).length;
    if (live >= o.minProviders) return "ok";
    if (all.length === 0) return "no storage providers configured (INGESTION_PROVIDERS)";
    return `${live} of ${all.length} storage providers reachable; readiness needs ${o.minProviders}`;
  };
  return async () => {
    const [p, l] = await Promise.all([providers(), ledger()]);
    return { providers: p, ledger: l };
  };
}
