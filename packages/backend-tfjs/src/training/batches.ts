/** Padding and the seeded batch order live in core (shared by every backend's trainer). */
export { makeBatch, BatchOrder, type Batch } from "@lowrank/core/internal";
