import type { CliContext } from "../cli-context.js";

/** `lowrank backends`: every registered backend, whether it initialises here, and on what device. */
export async function backendsCommand(ctx: CliContext, options: { json?: boolean }): Promise<void> {
  const registry = await ctx.registry();
  const rows = [];
  for (const name of registry.names()) {
    try {
      const { backend, init } = await registry.resolve(name);
      rows.push({ name, available: true, device: init.device, capabilities: [...backend.capabilities], note: init.note ?? null });
    } catch (error) {
      rows.push({ name, available: false, device: null, capabilities: [], note: (error as Error).message });
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
    ctx.out(`${r.name}\t${r.available ? `available on ${r.device}` : "unavailable"}\t${r.capabilities.join(",")}${r.note ? `\t${r.note}` : ""}`);
  }
}
