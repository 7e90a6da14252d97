import type { DescService } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";

/** A contract and its (possibly partial) implementation; unimplemented methods answer UNIMPLEMENTED. */
export interface ServiceBinding<S extends DescService = DescService> {
  readonly service: S;
  readonly impl: Partial<ServiceImpl<S>>;
}

/** Pairs a service descriptor with its implementation, keeping the implementation type-checked. */
export function bind<S extends DescService>(service: S, impl: Partial<ServiceImpl<S>>): ServiceBinding {
  return { service, impl };
}
