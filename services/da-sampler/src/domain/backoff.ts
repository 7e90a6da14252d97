/**
 * Back-off of one sampler against one provider: after `failures` rounds in a row in which the
 * provider could not be reached, its next round waits 2^(failures − 1) intervals (at most
 * `maxFactor`), so a gone provider gets a trickle of reads, never a storm; the quorum re-check
 * that the first failure started is what proves it gone.
 */
export function backoffDelayMs(failures: number, intervalMs: number, maxFactor = 16): number {
  if (failures <= 0) return 0;
  return intervalMs * Math.min(maxFactor, 2 ** (failures - 1));
}
