import { GpuClassCatalog, loadGpuClassCatalog } from "@deai/kit";

const kindOf = (f: () => unknown): string | undefined => {
  try {
    f();
  } catch (e) {
    return (e as { kind?: string }).kind ?? (e as Error).message;
  }
  return undefined;
};

describe("GPU class catalog", () => {
  const catalog = loadGpuClassCatalog();

  it("reads the repository's catalog and resolves a class by vendor, model, memory and interface", () => {
    expect(catalog.classes.length).toBeGreaterThanOrEqual(10);
    const h100 = catalog.resolve({ vendor: "nvidia", model: "h100", vramGib: 80, interface: "sxm5" });
    expect(h100).toMatchObject({ id: "nvidia-h100-80g-sxm5", interconnect: "nvlink4", resource: "nvidia.com/gpu" });
    expect(catalog.resolve({ vendor: "nvidia", model: "h100", vramGib: 80, interface: "sxm5", interconnect: "nvlink4" })).toBe(h100);
    expect(catalog.byClassId("amd-mi300x-192g-oam")?.vramGib).toBe(192);
  });

  it("refuses unknown classes, a wrong interconnect and a missing class with InvalidArgument naming the field", () => {
    expect(kindOf(() => catalog.resolve({ vendor: "nvidia", model: "h100", vramGib: 94, interface: "sxm5" }))).toBe("invalid_argument");
    expect(kindOf(() => catalog.resolve({ vendor: "acme", model: "x1", vramGib: 8, interface: "pcie4" }))).toBe("invalid_argument");
    expect(
      kindOf(() => catalog.resolve({ vendor: "nvidia", model: "h100", vramGib: 80, interface: "pcie5", interconnect: "nvlink4" })),
    ).toBe("invalid_argument");
    expect(kindOf(() => catalog.resolve(undefined, "spec.gpu_class"))).toBe("invalid_argument");
    expect(() => catalog.resolve({ vendor: "nvidia", model: "h100", vramGib: 94, interface: "sxm5" }, "spec.gpu_class")).toThrow(
      /^spec\.gpu_class .*known for nvidia h100: 80 GiB sxm5, 80 GiB pcie5/,
    );
  });

  it("refuses a malformed or ambiguous catalog file", () => {
    const ok = { id: "a-b", vendor: "a", model: "b", vramGib: 8, interface: "pcie4", interconnect: "pcie4", resource: "a.com/gpu" };
    expect(() => GpuClassCatalog.fromJson({ classes: [] })).toThrow(/non-empty/);
    expect(() => GpuClassCatalog.fromJson({ classes: [{ ...ok, vendor: "NVIDIA" }] })).toThrow(/vendor/);
    expect(() => GpuClassCatalog.fromJson({ classes: [{ ...ok, vramGib: 1.5 }] })).toThrow(/vramGib/);
    expect(() => GpuClassCatalog.fromJson({ classes: [ok, { ...ok, id: "a-b2" }] })).toThrow(/duplicates/);
  });
});
