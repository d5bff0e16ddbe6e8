/** Learning-rate schedules live in core (shared by every backend's trainer). */
export { learningRateAt, type ScheduleName } from "@lowrank/core/internal";
