/**
 * The slot objects of an upload at its providers: one object per (upload, slot), written as a
 * multipart upload whose parts are the part groups, completed when the stream ends, deleted
 * when the upload ends without a dataset.
 */
import { create } from "@bufbuild/protobuf";

import { PlacementSchema, type Placement } from "@deai/contracts/deai/ingestion/v1/ingestion_pb";
import type { ProviderRegistry, StorageProvider } from "@deai/kit";

/** S3 object key of one slot of an upload (the dataset keeps its upload's objects). */
export function slotKey(uploadId: string, slot: number): string {
  return `datasets/${uploadId}/slot-${String(slot).padStart(3, "0")}`;
}

/** Where each slot of an upload lives: one object per (upload, slot) at its provider. */
export function placementsOf(
  uploadId: string,
  providers: readonly { id: string; config: { bucket: string; endpoint: string } }[],
): Placement[] {
  return providers.map((p, slot) =>
    create(PlacementSchema, { slot, providerId: p.id, bucket: p.config.bucket, key: slotKey(uploadId, slot), endpoint: p.config.endpoint }),
  );
}

/** One multipart upload per slot; on a failure, the ones started are aborted. */
export async function initiateAll(uploadId: string, providers: readonly StorageProvider[]): Promise<string[]> {
  const multipart: string[] = [];
  try {
    for (const [slot, p] of providers.entries()) multipart.push(await p.initiateMultipart(slotKey(uploadId, slot)));
    return multipart;
  } catch (e) {
    await Promise.all(multipart.map((id, slot) => providers[slot]!.abortMultipart(slotKey(uploadId, slot), id).catch(() => undefined)));
    throw e;
  }
}

/** Completes every slot object from its parts' etags; a provider failing here leaves the upload open to retry. */
export async function completeAll(
  registry: ProviderRegistry,
  placements: readonly Placement[],
  multipart: readonly string[],
  etagsPerGroup: readonly (readonly string[])[],
): Promise<void> {
  await Promise.all(
    placements.map(async (p, slot) => {
      const provider = registry.get(p.providerId);
      try {
        await provider.completeMultipart(
          p.key,
          multipart[slot]!,
          etagsPerGroup.map((etags) => etags[slot]!),
        );
      } catch (e) {
        // Completed on an earlier attempt: the object is there.
        if (!(await provider.exists(p.key))) throw e;
      }
    }),
  );
}

/** Aborts each slot's multipart upload and deletes its object (whichever exists). */
export async function deleteAll(registry: ProviderRegistry, placements: readonly Placement[], multipart: readonly string[]): Promise<void> {
  await Promise.all(
    placements.map(async (p, slot) => {
      if (!registry.has(p.providerId)) return;
      const provider = registry.get(p.providerId);
      await provider.abortMultipart(p.key, multipart[slot]!);
      await provider.remove(p.key);
    }),
  );
}
