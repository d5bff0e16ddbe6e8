/**
 * @lowrank/hub — not implemented yet: this package is a shell so that the workspace builds.
 * Its work is tracked in the project's issues.
 */
export const packageStatus = { name: "@lowrank/hub", implemented: false } as const;
