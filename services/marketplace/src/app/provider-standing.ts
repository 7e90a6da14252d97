// The port to slashing: a provider's standing (status and bonded stake). The service uses the
// gRPC implementation against deai.slashing.v1 GetProviderStatus; tests use a real slashing
// process or a fake implementing this interface.
import { Code, ConnectError } from "@connectrpc/connect";

import { serviceClient, UnavailableError, type ActorKey } from "@deai/kit";
import { ProviderStatus, SlashingService } from "@deai/contracts/deai/slashing/v1/slashing_pb";

export type StandingStatus = "active" | "jailed" | "tombstoned";

export interface Standing {
  readonly status: StandingStatus;
  /** Bonded stake, base units. */
  readonly bonded: bigint;
  readonly jailedUntil: Date | null;
}

export interface ProviderStanding {
  /** The provider's standing; a provider slashing does not know is active with nothing bonded. Throws Unavailable when slashing cannot be asked. */
  standing(providerId: string): Promise<Standing>;
}

/** ProviderStanding over deai.slashing.v1 GetProviderStatus. */
export class SlashingStanding implements ProviderStanding {
  private readonly client;

  constructor(
    baseUrl: string,
    key: ActorKey,
    private readonly timeoutMs = 3000,
  ) {
    this.client = serviceClient(SlashingService, { baseUrl, key });
  }

  async standing(providerId: string): Promise<Standing> {
    try {
      const r = await this.client.getProviderStatus({ providerId }, { timeoutMs: this.timeoutMs });
      const status: StandingStatus =
        r.status === ProviderStatus.JAILED ? "jailed" : r.status === ProviderStatus.TOMBSTONED ? "tombstoned" : "active";
      return {
        status,
        bonded: r.bonded && r.bonded.micros > 0n ? r.bonded.micros : 0n,
        jailedUntil: r.jailedUntil ? new Date(Number(r.jailedUntil.seconds) * 1000) : null,
      };
    } catch (e) {
      const ce = ConnectError.from(e);
      if (ce.code === Code.NotFound) return { status: "active", bonded: 0n, jailedUntil: null };
      throw new UnavailableError(`slashing did not answer GetProviderStatus for ${providerId}: ${ce.rawMessage}`);
    }
  }
}

/** When no slashing URL is configured: nobody has stake, so nobody can offer (README says so). */
export const noSlashing: ProviderStanding = {
  standing: async () => {
    throw new UnavailableError("MARKETPLACE_SLASHING_URL is not set: provider stake cannot be checked, so offers are refused");
  },
};
