/** The CLI package's version (kept in step with package.json by the release). */
export const LOWRANK_VERSION = "0.1.0";
