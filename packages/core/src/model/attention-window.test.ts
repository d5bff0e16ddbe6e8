import { describe, expect, test } from "vitest";
import { captureLowrankError } from "../testing/capture-error.js";
import { attentionWindow } from "./attention-window.js";

describe("attentionWindow", () => {
  test.each([
    [{ model_type: "mistral", sliding_window: 4 }, 4],
    [{ model_type: "mixtral", sliding_window: 4096 }, 4096],
    [{ model_type: "mistral", sliding_window: null }, undefined],
    [{ model_type: "mistral" }, undefined],
    [{ model_type: "llama", sliding_window: 4 }, undefined],
    [{ model_type: "qwen2", sliding_window: 4096, use_sliding_window: false }, undefined],
  ])("%j → %s", (config, expected) => {
    expect(attentionWindow(config, "m")).toBe(expected);
  });

  test("refuses what it cannot run as transformers does", () => {
    expect(captureLowrankError(() => attentionWindow({ model_type: "mistral", sliding_window: 0 }, "m")).message).toBe(
      "m/config.json: `sliding_window` must be a positive integer or null, got 0",
    );
    expect(captureLowrankError(() => attentionWindow({ model_type: "qwen2", sliding_window: 8, use_sliding_window: true }, "m")).message).toMatch(
      /^m\/config\.json: `use_sliding_window` true/,
    );
  });
});
