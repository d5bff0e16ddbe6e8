import type { BackendCapability } from "@lowrank/core";
import type { CliContext } from "../cli-context.js";

/**
 * `lowrank backends`: every registered backend, whether it initialises here, on what device, what it
 * can do, and what it is the default for (the first available backend, by priority, that has the
 * capability and does not decline it in general; a backend may still decline a particular model).
 */
export async function backendsCommand(ctx: CliContext, options: { json?: boolean }): Promise<void> {
  const registry = await ctx.registry();
  const rows = [];
  const taken = new Set<BackendCapability>();
  for (const name of registry.names()) {
    try {
      const { backend, init } = await registry.resolve(name);
      const defaultFor: BackendCapability[] = [];
      for (const capability of backend.capabilities) {
        if (taken.has(capability) || (await backend.declineReason?.({ capability })) !== undefined) continue;
        taken.add(capability);
        defaultFor.push(capability);
      }
      rows.push({ name, available: true, device: init.device, capabilities: [...backend.capabilities], default_for: defaultFor, note: init.note ?? null });
    } catch (error) {
      rows.push({ name, available: false, device: null, capabilities: [], default_for: [], note: (error as Error).message });
    }
  }
  if (options.json) {
    ctx.out(JSON.stringify(rows, null, 2));
    return;
  }
  if (rows.length === 0) {
    ctx.out("no backends registered (core merges without one; add plugins with --plugin <module>)");
    return;
  }
  for (const r of rows) {
    const defaults = r.default_for.length > 0 ? ` (default for ${r.default_for.join(",")})` : "";
    ctx.out(`${r.name}\t${r.available ? `available on ${r.device}` : "unavailable"}\t${r.capabilities.join(",")}${defaults}${r.note ? `\t${r.note}` : ""}`);
  }
}
