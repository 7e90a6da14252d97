/**
 * The canonical GPU class catalog (data in `packages/kit/data/gpu-classes.json`): what offers
 * and orders name, so classes compare by equality and nobody prices an "H100" that is really
 * a PCIe card with half the fabric. Pure: `@deai/kit/gpu-classes`; the file is read by
 * `loadGpuClassCatalog` (catalog/gpu-classes-file.ts).
 */
import { InvalidArgumentError } from "../errors.js";

/** One canonical GPU class. */
export interface GpuClassEntry {
  /** Stable id, e.g. "nvidia-h100-80g-sxm5". */
  readonly id: string;
  readonly vendor: string;
  readonly model: string;
  /** Memory per GPU, GiB. */
  readonly vramGib: number;
  /** Host/peer interface ("sxm5", "pcie5", "oam"). */
  readonly interface: string;
  /** Intra-node GPU fabric ("nvlink4", "pcie5", "infinity-fabric"). */
  readonly interconnect: string;
  /** The Kubernetes extended resource ("nvidia.com/gpu"). */
  readonly resource: string;
}

/** A class as a request names it; interconnect is optional (the catalog knows it). */
export interface GpuClassRef {
  readonly vendor: string;
  readonly model: string;
  readonly vramGib: number;
  readonly interface: string;
  readonly interconnect?: string;
}

const NAME = /^[a-z0-9][a-z0-9.-]{0,31}$/;

function keyOf(c: { vendor: string; model: string; vramGib: number; interface: string }): string {
  return `${c.vendor}/${c.model}/${c.vramGib}/${c.interface}`;
}

function field(v: unknown, name: string, at: string): string {
  if (typeof v !== "string" || !NAME.test(v))
    throw new Error(`gpu class catalog: ${at}.${name} must be a lowercase name, got ${JSON.stringify(v)}`);
  return v;
}

/** The catalog: lookup by class or id; anything not in it is refused. */
export class GpuClassCatalog {
  private readonly byKey = new Map<string, GpuClassEntry>();
  private readonly byId = new Map<string, GpuClassEntry>();

  constructor(readonly classes: readonly GpuClassEntry[]) {
    for (const c of classes) {
      if (this.byId.has(c.id)) throw new Error(`gpu class catalog: duplicate id ${c.id}`);
      if (this.byKey.has(keyOf(c))) throw new Error(`gpu class catalog: ${c.id} duplicates ${this.byKey.get(keyOf(c))!.id}`);
      this.byId.set(c.id, c);
      this.byKey.set(keyOf(c), c);
    }
  }

  /** Parses the catalog file's JSON; throws naming the first malformed entry. */
  static fromJson(json: unknown): GpuClassCatalog {
    const classes = (json as { classes?: unknown } | null)?.classes;
    if (!Array.isArray(classes) || classes.length === 0) throw new Error("gpu class catalog: `classes` must be a non-empty array");
    return new GpuClassCatalog(
      classes.map((c: Record<string, unknown>, i) => {
        const at = `classes[${i}]`;
        if (!Number.isSafeInteger(c.vramGib) || (c.vramGib as number) <= 0 || (c.vramGib as number) > 4096) {
          throw new Error(`gpu class catalog: ${at}.vramGib must be a positive integer`);
        }
        if (typeof c.resource !== "string" || !/^[a-z0-9.-]+\/[a-z0-9.-]+$/.test(c.resource)) {
          throw new Error(`gpu class catalog: ${at}.resource must be an extended resource name`);
        }
        return {
          id: field(c.id, "id", at),
          vendor: field(c.vendor, "vendor", at),
          model: field(c.model, "model", at),
          vramGib: c.vramGib as number,
          interface: field(c.interface, "interface", at),
          interconnect: field(c.interconnect, "interconnect", at),
          resource: c.resource,
        };
      }),
    );
  }

  byClassId(id: string): GpuClassEntry | undefined {
    return this.byId.get(id);
  }

  /**
   * The canonical class a request names, or InvalidArgument naming `field` and what the
   * catalog has for that vendor and model. An interconnect that is given must be the class's.
   */
  resolve(ref: GpuClassRef | undefined, fieldName = "gpu_class"): GpuClassEntry {
    if (!ref) throw new InvalidArgumentError(`${fieldName} is required`, { field: fieldName });
    const found = this.byKey.get(keyOf(ref));
    if (!found) {
      const near = this.classes
        .filter((c) => c.vendor === ref.vendor && c.model === ref.model)
        .map((c) => `${c.vramGib} GiB ${c.interface}`);
      throw new InvalidArgumentError(
        `${fieldName} ${JSON.stringify(`${ref.vendor} ${ref.model} ${ref.vramGib} GiB ${ref.interface}`).slice(0, 120)} is not in the GPU class catalog` +
          (near.length > 0 ? ` (known for ${ref.vendor} ${ref.model}: ${near.join(", ")})` : ""),
        { field: fieldName },
      );
    }
    if (ref.interconnect !== undefined && ref.interconnect !== "" && ref.interconnect !== found.interconnect) {
      throw new InvalidArgumentError(
        `${fieldName}.interconnect of ${found.id} is ${found.interconnect}, not ${JSON.stringify(ref.interconnect).slice(0, 40)}`,
        {
          field: `${fieldName}.interconnect`,
        },
      );
    }
    return found;
  }
}
