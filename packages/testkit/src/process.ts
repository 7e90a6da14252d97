// Service processes for process-level tests (kill -9, conformance): the one implementation is
// the bench harness's, which the benchmarks use too.
export { spawnService, stopService, type ServiceProcess, type SpawnOptions } from "@deai/bench";
