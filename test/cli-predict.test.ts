import { mkdtempSync, rmSync, writeFileSync, existsSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, test } from "vitest";
import { readSafetensors, toFloat32 } from "@lowrank/core";
import { maxAbsDiff, requireFixture, idRows } from "@lowrank/core/testing";
import { lowrank } from "./cli-helpers.js";

const tmp = mkdtempSync(path.join(os.tmpdir(), "lowrank-predict-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const PAIRS = [
  { base: "gpt2-tiny", adapter: "gpt2-tiny-lora", cases: "gpt2-tiny-lora" },
  { base: "llama-tiny", adapter: "llama-tiny-lora", cases: "llama-tiny-lora" },
  { base: "roberta-tiny", adapter: "roberta-tiny-lora", cases: "roberta-tiny-lora" },
  { base: "gpt2-tiny", adapter: "gpt2-tiny-dora", cases: "gpt2-tiny-dora" },
  { base: "llama-tiny", adapter: "llama-tiny-embed-lora", cases: "llama-tiny-embed-lora" },
];

describe.each(PAIRS)("lowrank predict --backend tfjs on $adapter", (pair) => {
  test.each([
    ["base", [], "base"],
    ["adapter", ["--adapter"], "adapted"],
    ["merged", ["--adapter", "--merge"], "merged"],
  ])("%s matches PEFT within 1e-4", async (name, flags, expected) => {
    const cases = (await readSafetensors(requireFixture("cases", `${pair.cases}.safetensors`))).tensors;
    const ids = path.join(tmp, `${pair.cases}-ids.json`);
    const mask = path.join(tmp, `${pair.cases}-mask.json`);
    writeFileSync(ids, JSON.stringify(idRows(cases.get("input_ids")!)));
    writeFileSync(mask, JSON.stringify(idRows(cases.get("attention_mask")!)));
    const out = path.join(tmp, `${pair.cases}-${name}.safetensors`);
    const args = ["predict", "--backend", "tfjs", "--model", requireFixture(pair.base), "--input-ids", ids, "--attention-mask", mask, "--output", out];
    for (const f of flags) args.push(f, ...(f === "--adapter" ? [requireFixture(pair.adapter)] : []));
    const run = lowrank(args);
    expect(run.status, run.stderr).toBe(0);
    const got = (await readSafetensors(out)).tensors;
    const want = cases.get(`${expected}_logits`)!;
    expect(got.get("logits")!.shape).toEqual(want.shape);
    expect(maxAbsDiff(toFloat32(got.get("logits")!), toFloat32(want))).toBeLessThanOrEqual(1e-4);
    if (cases.has(`${expected}_last_hidden_state`)) {
      // Compare real tokens only: padded positions hold whatever transformers computes there.
      const m = idRows(cases.get("attention_mask")!);
      const g = toFloat32(got.get("last_hidden_state")!);
      const w = toFloat32(cases.get(`${expected}_last_hidden_state`)!);
      const hidden = w.length / (m.length * m[0]!.length);
      let worst = 0;
      m.forEach((row, b) =>
        row.forEach((on, s) => {
          if (on)
            for (let d = 0; d < hidden; d++) worst = Math.max(worst, Math.abs(g[(b * row.length + s) * hidden + d]! - w[(b * row.length + s) * hidden + d]!));
        }),
      );
      expect(worst).toBeLessThanOrEqual(1e-4);
    } else {
      expect(got.has("last_hidden_state")).toBe(false);
    }
  });
});

describe("predict input errors", () => {
  test.each([
    ["[[1, 2], [3]]", /row 1 has 1 entries but row 0 has 2/],
    ["[[1, 2.5]]", /expected a non-empty JSON array of non-empty integer arrays/],
    ["not json", /cannot read a JSON array/],
    ["[[1, 99999]]", /input id 99999 at \[0\]\[1\] is outside the vocabulary \(0–511\)/],
  ])("%s", (content, message) => {
    const ids = path.join(tmp, `bad-${Math.random()}.json`);
    writeFileSync(ids, content);
    const out = path.join(tmp, "never.safetensors");
    const run = lowrank(["predict", "--model", requireFixture("gpt2-tiny"), "--input-ids", ids, "--output", out]);
    expect(run.status).toBe(2);
    expect(run.stderr).toMatch(/^lowrank: error: [^\n]+\n$/);
    expect(run.stderr).toMatch(message);
    expect(existsSync(out)).toBe(false);
  });
});
