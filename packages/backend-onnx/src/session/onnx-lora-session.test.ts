import { describe, expect, test } from "vitest";
import { readAdapter, readSafetensors, toFloat32, type LoraAdapter } from "@lowrank/core";
import { maxAbsDiff, requireFixture, idRows } from "@lowrank/core/testing";
import { idsTensor } from "./ort-session.js";
import { OnnxLoraSession } from "./onnx-lora-session.js";

describe.each([
  ["gpt2-tiny", "model.onnx"],
  ["gpt2-tiny", "model.folded.onnx"],
  ["llama-tiny", "model.onnx"],
  ["llama-tiny", "model.folded.onnx"],
])("runtime adapters on %s/%s", (base, file) => {
  test("one session serves two adapters and the base in alternation, each matching PEFT", async () => {
    const second = base === "gpt2-tiny" ? null : "llama-tiny-embed-lora";
    const adapters: Record<string, LoraAdapter> = { main: await readAdapter(requireFixture(`${base}-lora`)) };
    if (second) adapters.second = await readAdapter(requireFixture(second));
    // A second adapter for GPT-2: the same factors at another rank (zero-padded) must give the same output.
    if (!second) {
      const padded = await readAdapter(requireFixture(`${base}-lora`));
      for (const [key, t] of padded.tensors) {
        const values = toFloat32(t);
        if (key.endsWith("lora_A.weight")) {
          const [r, n] = t.shape as [number, number];
          const out = new Float32Array((r + 2) * n);
          out.set(values);
          padded.tensors.set(key, { dtype: "F32", shape: [r + 2, n], data: new Uint8Array(out.buffer) });
        } else if (key.endsWith("lora_B.weight")) {
          const [m, r] = t.shape as [number, number];
          const out = new Float32Array(m * (r + 2));
          for (let i = 0; i < m; i++) out.set(values.subarray(i * r, (i + 1) * r), i * (r + 2));
          padded.tensors.set(key, { dtype: "F32", shape: [m, r + 2], data: new Uint8Array(out.buffer) });
        }
      }
      // Keep the scaling: alpha/r with r + 2.
      padded.config = { ...padded.config, r: padded.config.r + 2, lora_alpha: (padded.config.lora_alpha * (padded.config.r + 2)) / padded.config.r };
      adapters.second = padded;
    }
    const session = await OnnxLoraSession.create(requireFixture(base, file), { adapters });
    const casesMain = (await readSafetensors(requireFixture("cases", `${base}-lora.safetensors`))).tensors;
    const casesSecond = second ? (await readSafetensors(requireFixture("cases", `${second}.safetensors`))).tensors : casesMain;
    const idsMain = idRows(casesMain.get("input_ids")!);
    const idsSecond = idRows(casesSecond.get("input_ids")!);
    const sessionObject = session.session;
    for (let round = 0; round < 2; round++) {
      const a = await session.run({ input_ids: idsTensor(idsMain) }, { adapter: "main" });
      expect(maxAbsDiff(a.logits!.data as Float32Array, toFloat32(casesMain.get("adapted_logits")!))).toBeLessThanOrEqual(1e-4);
      const none = await session.run({ input_ids: idsTensor(idsMain) });
      expect(maxAbsDiff(none.logits!.data as Float32Array, toFloat32(casesMain.get("base_logits")!))).toBeLessThanOrEqual(1e-4);
      const b = await session.run({ input_ids: idsTensor(idsSecond) }, { adapter: "second" });
      expect(maxAbsDiff(b.logits!.data as Float32Array, toFloat32(casesSecond.get("adapted_logits")!))).toBeLessThanOrEqual(1e-4);
    }
    expect(session.session).toBe(sessionObject);
    await expect(session.run({ input_ids: idsTensor(idsMain) }, { adapter: "nope" })).rejects.toThrow(
      /adapter "nope" is not loaded in this session \(loaded: main, second\)/,
    );
    await session.release();
  });
});

test("a DoRA adapter loaded into a session made without DoRA inputs is refused in one line", async () => {
  const session = await OnnxLoraSession.create(requireFixture("gpt2-tiny", "model.onnx"), {
    slots: ["0", "1"].flatMap((l) => [
      { name: `transformer.h.${l}.attn.c_attn`, inFeatures: 64, outFeatures: 192 },
      { name: `transformer.h.${l}.mlp.c_fc`, inFeatures: 64, outFeatures: 256 },
    ]),
  });
  try {
    const dora = await readAdapter(requireFixture("gpt2-tiny-dora"));
    expect(() => session.loadAdapter("d", dora)).toThrow(
      /adapter "d" is DoRA \("transformer\.h\.0\.attn\.c_attn"\), but this session's slot has no DoRA inputs; create the session with this adapter/,
    );
  } finally {
    await session.release();
  }
});
