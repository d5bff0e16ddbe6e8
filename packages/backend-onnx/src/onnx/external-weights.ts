import { closeSync, openSync, writeSync } from "node:fs";
import path from "node:path";
import { EXTERNAL_LOCATION, newTensor, ONNX_FLOAT, type TensorProto } from "./onnx-codec.js";

/** The file, beside the model, that ExternalWeights writes. */
export const EXTERNAL_WEIGHTS_FILE = "weights.bin";

/**
 * Float32 initializers written straight to an external data file as a graph is built, so a model's
 * weights are never all held in JS at once (each is read from the checkpoint, written, dropped). The
 * tensors it returns point into the file (ONNX's external data: location, offset, length); the model
 * goes in the same folder.
 */
export class ExternalWeights {
  private readonly fd: number;
  private offset = 0;

  constructor(readonly dir: string) {
    this.fd = openSync(path.join(dir, EXTERNAL_WEIGHTS_FILE), "w");
  }

  /** Appends the values and returns the initializer that refers to them. */
  add(name: string, values: Float32Array, dims: readonly number[]): TensorProto {
    const bytes = new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
    // Page-aligned, as writeOnnx writes external data: ONNX Runtime can then map the file.
    const start = Math.ceil(this.offset / 4096) * 4096;
    let written = 0;
    while (written < bytes.byteLength) written += writeSync(this.fd, bytes, written, bytes.byteLength - written, start + written);
    this.offset = start + bytes.byteLength;
    return newTensor({
      name,
      dims: [...dims],
      data_type: ONNX_FLOAT,
      data_location: EXTERNAL_LOCATION,
      external_data: [
        { key: "location", value: EXTERNAL_WEIGHTS_FILE },
        { key: "offset", value: String(start) },
        { key: "length", value: String(bytes.byteLength) },
      ],
    });
  }

  close(): void {
    closeSync(this.fd);
  }
}
