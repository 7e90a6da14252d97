import { ProviderRegistry, type EventBus, type LedgerAnchoring } from "@deai/kit";
import type { NoteVerifier } from "@deai/proofs";

import type { DaSamplerConfig } from "../config.js";
import { subscribeRepair } from "../events/repair-events.js";
import type { Attestations } from "./attestations.js";
import type { DatasetCatalog } from "./catalog.js";
import type { SamplerContext } from "./context.js";
import { repairMetrics } from "./repair-metrics.js";
import { Repairs } from "./repair.js";

/**
 * Wires repair into the service: its own provider registry (repair's deadlines), the
 * `da.repair` loop on the kit Scheduler (when DA_REPAIR_ENABLED), and the consumers of
 * slashing's status events and of other processes' placements (always: every process follows).
 */
export async function setUpRepair(o: {
  config: DaSamplerConfig;
  ctx: SamplerContext;
  catalog: DatasetCatalog;
  attestations: Attestations;
  ledger: LedgerAnchoring | undefined;
  bus: EventBus;
  processTag: string;
  logVerifier?: NoteVerifier;
}): Promise<Repairs> {
  const { config, ctx } = o;
  const ms = config.DA_REPAIR_PROVIDER_TIMEOUT_MS;
  const registry = new ProviderRegistry(config.providers, { clock: ctx.clock, timeouts: { readMs: ms, callMs: ms, partIdleMs: ms } });
  const repairs = new Repairs({
    c: ctx,
    catalog: o.catalog,
    attestations: o.attestations,
    registry,
    ledger: o.ledger,
    signer: ctx.identities[0]!,
    metrics: repairMetrics(),
    graceMs: config.DA_REPAIR_GRACE_MS,
    partBytes: config.DA_REPAIR_PART_BYTES,
    readBytes: config.DA_REPAIR_READ_BYTES,
    readAhead: config.DA_REPAIR_READ_AHEAD,
    hashThreads: config.DA_REPAIR_HASH_THREADS,
    maxReadBytesPerS: config.DA_REPAIR_MAX_READ_BYTES_PER_S,
  });
  const loop = config.DA_REPAIR_ENABLED
    ? ctx.scheduler.register({ name: "da.repair", intervalMs: config.DA_REPAIR_INTERVAL_MS, run: (r) => repairs.tick(r.signal) })
    : undefined;
  if (!config.DA_REPAIR_ENABLED) ctx.logger.info("DA_REPAIR_ENABLED=false: this process follows placements but does not repair");
  await subscribeRepair({
    bus: o.bus,
    db: ctx.db,
    logger: ctx.logger,
    clock: ctx.clock,
    processTag: o.processTag,
    catalog: o.catalog,
    signers: ctx.knownSamplers,
    ...(o.logVerifier ? { log: o.logVerifier } : {}),
    kick: () => loop?.kick(),
  });
  return repairs;
}
