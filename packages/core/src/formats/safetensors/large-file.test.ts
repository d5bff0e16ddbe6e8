import { mkdtemp, open, rm, stat } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { expect, test } from "vitest";
import { SafetensorsFile } from "./safetensors-file.js";
import { planSafetensorsLayout } from "./write-safetensors.js";

// A file larger than 2 GB whose data is a hole (sparse): the reader must find the tensor after it
// by reading at an offset beyond 2^31, without loading the rest.
test("reads a tensor that sits beyond 2 GB in a larger-than-memory-sized file", async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), "lowrank-large-"));
  const file = path.join(dir, "large.safetensors");
  try {
    const padding = 2_300_000_000;
    const layout = planSafetensorsLayout([
      { name: "padding", dtype: "I64", shape: [padding / 8] },
      { name: "tail", dtype: "F32", shape: [4] },
    ]);
    const tailRange = layout.offsets.get("tail")!;
    expect(tailRange.begin).toBeGreaterThan(2 ** 31);
    const handle = await open(file, "w");
    await handle.write(layout.headerBytes, 0, layout.headerBytes.byteLength, 0);
    const tail = new Float32Array([1.5, -2.25, 3e-8, 65504]);
    await handle.write(new Uint8Array(tail.buffer), 0, 16, layout.headerBytes.byteLength + tailRange.begin);
    await handle.close();
    expect((await stat(file)).size).toBe(layout.totalBytes);

    const reader = await SafetensorsFile.open(file);
    try {
      expect(reader.names()).toEqual(["padding", "tail"]);
      expect(Array.from(await reader.readFloat32("tail"))).toEqual(Array.from(tail));
    } finally {
      await reader.close();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
