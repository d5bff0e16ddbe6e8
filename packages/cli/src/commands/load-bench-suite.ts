import { LowrankError } from "@lowrank/core";

/** What `lowrank bench` uses of the suite. */
export type BenchSuite = typeof import("@lowrank/bench");

/** The one line `lowrank bench` prints where the suite is not installed (the published CLI). */
export const BENCH_NOT_INSTALLED = "the benchmark suite (@lowrank/bench) is not installed; run it from the lowrank repository";

/** Node's "cannot find" error for the package itself (ESM or CJS), not for a module it imports. */
const suiteNotFound = (error: unknown): boolean => {
  const { code, message } = (error ?? {}) as { code?: unknown; message?: unknown };
  return (
    (code === "ERR_MODULE_NOT_FOUND" || code === "MODULE_NOT_FOUND") &&
    typeof message === "string" &&
    /^Cannot find (package|module) '@lowrank\/bench'/.test(message)
  );
};

/**
 * Loads the private benchmark package on first use. It is a dev dependency of the CLI, present in
 * the repository and absent from a published install.
 * @throws LowrankError `USAGE` when @lowrank/bench cannot be found (any other load failure is rethrown).
 */
export async function loadBenchSuite(load: () => Promise<BenchSuite> = () => import("@lowrank/bench")): Promise<BenchSuite> {
  try {
    return await load();
  } catch (error) {
    if (suiteNotFound(error)) throw new LowrankError("USAGE", BENCH_NOT_INSTALLED, { cause: error });
    throw error;
  }
}
