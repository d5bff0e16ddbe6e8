import * as tf from "@tensorflow/tfjs";
import { LowrankError } from "@lowrank/core";

/**
 * A model's parameters by checkpoint key. Layers read their tensors from here at every forward
 * pass, so swapping an entry (a merged weight, a trainable copy for modules_to_save or full
 * fine-tuning) takes effect everywhere the key is used — a tied head included.
 */
export class ParamStore {
  private readonly tensors = new Map<string, tf.Tensor>();
  /** Transposed copies of frozen 2-D entries, by the tensor they were made from. */
  private readonly transposes = new Map<string, { of: tf.Tensor; value: tf.Tensor2D }>();

  constructor(private readonly label: string) {}

  get<T extends tf.Tensor = tf.Tensor>(key: string): T {
    const t = this.tensors.get(key);
    if (!t) throw new LowrankError("CHECKPOINT_INVALID", `${this.label}: missing tensor "${key}"`);
    return t as T;
  }

  has(key: string): boolean {
    return this.tensors.has(key);
  }

  keys(): string[] {
    return [...this.tensors.keys()];
  }

  /** Replaces an entry; the previous tensor is returned (not disposed) so callers can keep it. */
  set(key: string, tensor: tf.Tensor): tf.Tensor | undefined {
    const previous = this.tensors.get(key);
    this.tensors.set(key, tensor);
    this.dropTranspose(key);
    return previous;
  }

  /**
   * The entry transposed, made once and kept while the entry stays the same tensor (frozen
   * weights: the fast matMul kernels need both orientations).
   */
  transposed(key: string): tf.Tensor2D {
    const current = this.get<tf.Tensor2D>(key);
    const cached = this.transposes.get(key);
    if (cached && cached.of === current) return cached.value;
    this.dropTranspose(key);
    const value = tf.keep(tf.transpose(current));
    this.transposes.set(key, { of: current, value });
    return value;
  }

  private dropTranspose(key: string): void {
    this.transposes.get(key)?.value.dispose();
    this.transposes.delete(key);
  }

  /** Turns an entry into a trainable variable (same value) and returns it. */
  makeTrainable(key: string, name = key): tf.Variable {
    const current = this.get(key);
    if (current instanceof tf.Variable && current.trainable) return current;
    const variable = tf.variable(current, true, `${name}#${Math.random().toString(36).slice(2)}`);
    this.tensors.set(key, variable);
    this.dropTranspose(key);
    return variable;
  }

  dispose(): void {
    for (const t of this.tensors.values()) t.dispose();
    for (const t of this.transposes.values()) t.value.dispose();
    this.tensors.clear();
    this.transposes.clear();
  }
}
