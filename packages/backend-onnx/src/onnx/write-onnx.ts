import path from "node:path";
import { AtomicFile, writeFileAtomic } from "@lowrank/core/internal";
import { encodeModel, EXTERNAL_LOCATION, newTensor, type ModelProto } from "./onnx-codec.js";
import { readTensorBytes } from "./tensor-data.js";

/** Protocol buffers cannot exceed 2 GB: above this, weights go to an external data file. */
export const EXTERNAL_DATA_THRESHOLD = 1_800_000_000;

/**
 * Writes an ONNX model atomically. When its weights would push the file past protobuf's 2 GB limit
 * (or `external` is asked), every initializer of 1 KB or more goes to `<file>.data` beside it, as
 * onnx.save_model(..., save_as_external_data=True) does; external data of the source is carried
 * over from `sourceDir`.
 */
export async function writeOnnx(
  target: string,
  model: ModelProto,
  options: { sourceDir: string; external?: boolean },
): Promise<{ bytes: number; externalFile?: string }> {
  const inlineBytes = model.graph.initializer.reduce(
    (n, t) =>
      n + (t.raw_data?.byteLength ?? 0) + (t.data_location === EXTERNAL_LOCATION ? Number(t.external_data?.find((e) => e.key === "length")?.value ?? 0) : 0),
    0,
  );
  const external = options.external ?? inlineBytes > EXTERNAL_DATA_THRESHOLD;
  const hasExternal = model.graph.initializer.some((t) => t.data_location === EXTERNAL_LOCATION);
  if (!external && !hasExternal) {
    const bytes = encodeModel(model);
    await writeFileAtomic(target, bytes);
    return { bytes: bytes.byteLength };
  }
  const dataName = `${path.basename(target)}.data`;
  const dataFile = await AtomicFile.create(path.join(path.dirname(target), dataName));
  try {
    let offset = 0;
    const initializers = model.graph.initializer.map((t) => {
      const isExternal = t.data_location === EXTERNAL_LOCATION;
      const size = isExternal ? 0 : (t.raw_data?.byteLength ?? 0);
      if (!isExternal && (!external || size < 1024)) return t;
      const data = isExternal ? readTensorBytes(t, options.sourceDir) : t.raw_data!;
      return { t, data };
    });
    const rewritten = [];
    for (const entry of initializers) {
      if (!("data" in entry)) {
        rewritten.push(entry);
        continue;
      }
      const { t, data } = entry as { t: (typeof model.graph.initializer)[number]; data: Uint8Array };
      const pad = (4096 - (offset % 4096)) % 4096;
      if (pad) await dataFile.write(new Uint8Array(pad), offset);
      offset += pad;
      await dataFile.write(data, offset);
      rewritten.push(
        newTensor({
          name: t.name,
          dims: t.dims,
          data_type: t.data_type,
          data_location: EXTERNAL_LOCATION,
          external_data: [
            { key: "location", value: dataName },
            { key: "offset", value: String(offset) },
            { key: "length", value: String(data.byteLength) },
          ],
        }),
      );
      offset += data.byteLength;
    }
    const copy = { ...model, graph: { ...model.graph, initializer: rewritten } } as ModelProto;
    const bytes = encodeModel(copy);
    await dataFile.commit();
    await writeFileAtomic(target, bytes);
    return { bytes: bytes.byteLength + offset, externalFile: dataName };
  } catch (error) {
    await dataFile.abort();
    throw error;
  }
}
