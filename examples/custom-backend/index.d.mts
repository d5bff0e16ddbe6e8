import type { BackendRegistry, LowrankBackend } from "@lowrank/core";
export declare function createExampleBackend(): LowrankBackend;
export declare function register(registry: BackendRegistry): void;
