import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { readAdapter } from "../adapter/read-adapter.js";
import type { BackendCapability, LowrankBackend } from "../backend/backend.js";
import { LowrankError } from "../errors/lowrank-error.js";
import { Checkpoint } from "../formats/checkpoint.js";
import { readSafetensors } from "../formats/safetensors/safetensors-file.js";
import { toFloat32, toIntegers } from "../formats/safetensors/dtype.js";
import { silentLogger } from "../logger.js";
import { maxAbsDiff, requireFixture } from "./fixtures.js";

export interface ConformanceCheck {
  name: string;
  /** The capability the check is about; undefined for checks every backend must pass. */
  capability?: BackendCapability;
  run: () => Promise<void>;
}

const PAIRS = [
  { base: "gpt2-tiny", adapter: "gpt2-tiny-lora", cases: "gpt2-tiny-lora" },
  { base: "llama-tiny", adapter: "llama-tiny-lora", cases: "llama-tiny-lora" },
  { base: "roberta-tiny", adapter: "roberta-tiny-lora", cases: "roberta-tiny-lora" },
];

function assertClose(what: string, got: ArrayLike<number>, want: ArrayLike<number>, tolerance: number): void {
  const diff = maxAbsDiff(got, want);
  if (!(diff <= tolerance)) throw new Error(`${what}: max abs difference ${diff} exceeds ${tolerance}`);
}

/**
 * The checks a backend must pass for the capabilities it claims, against the PEFT fixtures:
 * `merge` reproduces every merged tensor within 1e-5; `infer` reproduces base, adapted and merged
 * logits within 1e-4. Only checks for the given capabilities are returned, so none passes vacuously.
 * Run each with your test framework (e.g. `test.each`).
 */
export function backendConformanceChecks(
  create: () => LowrankBackend | Promise<LowrankBackend>,
  capabilities: readonly BackendCapability[],
): ConformanceCheck[] {
  const checks: ConformanceCheck[] = [
    {
      name: "declares a name, capabilities and devices, and initialises",
      run: async () => {
        const backend = await create();
        if (!backend.name || backend.capabilities.length === 0 || backend.devices.length === 0)
          throw new Error("backend must declare name, capabilities and devices");
        const init = await backend.init({ logger: silentLogger });
        if (!init.device) throw new Error("init must report the device it uses");
        const missing = capabilities.filter((c) => !backend.capabilities.includes(c));
        if (missing.length > 0) throw new Error(`backend does not declare ${missing.join(", ")}`);
      },
    },
  ];
  for (const pair of PAIRS) {
    checks.push({
      name: `merge: ${pair.adapter} reproduces PEFT's merged weights`,
      capability: "merge",
      run: async () => {
        const backend = await create();
        await backend.init({ logger: silentLogger });
        const out = await mkdtemp(path.join(os.tmpdir(), "lowrank-conformance-"));
        try {
          const adapter = await readAdapter(requireFixture(pair.adapter));
          await backend.merge!({ baseDir: requireFixture(pair.base), adapter, outDir: path.join(out, "merged") });
          const { tensors } = await readSafetensors(requireFixture("cases", `${pair.cases}.safetensors`));
          const merged = await Checkpoint.open(path.join(out, "merged"));
          try {
            for (const [key, tensor] of tensors) {
              if (!key.startsWith("merged.")) continue;
              assertClose(key, await merged.readFloat32(key.slice("merged.".length)), toFloat32(tensor), 1e-5);
            }
          } finally {
            await merged.close();
          }
        } finally {
          await rm(out, { recursive: true, force: true });
        }
      },
    });
    checks.push({
      name: `infer: ${pair.adapter} reproduces PEFT's logits`,
      capability: "infer",
      run: async () => {
        const backend = await create();
        await backend.init({ logger: silentLogger });
        const { tensors } = await readSafetensors(requireFixture("cases", `${pair.cases}.safetensors`));
        const ids = tensors.get("input_ids")!;
        const mask = tensors.get("attention_mask")!;
        const rows = (t: typeof ids): number[][] => {
          const flat = toIntegers(t);
          const [b, s] = t.shape;
          if (b === undefined || s === undefined) {
            throw new LowrankError("SHAPE_MISMATCH", `${pair.cases}.safetensors: expected [batch, sequence] ids and mask, got shape [${t.shape.join(", ")}]`);
          }
          return Array.from({ length: b }, (_, i) => flat.slice(i * s, (i + 1) * s));
        };
        const adapter = await readAdapter(requireFixture(pair.adapter));
        const model = requireFixture(pair.base);
        for (const [mode, expected] of [
          ["base", "base_logits"],
          ["adapted", "adapted_logits"],
          ["merged", "merged_logits"],
        ] as const) {
          const result = await backend.predict!({
            model,
            inputIds: rows(ids),
            attentionMask: rows(mask),
            ...(mode === "base" ? {} : { adapter, merge: mode === "merged" }),
          });
          assertClose(`${pair.adapter} ${expected}`, result.logits.data, toFloat32(tensors.get(expected)!), 1e-4);
        }
      },
    });
  }
  return checks.filter((c) => c.capability === undefined || capabilities.includes(c.capability));
}
