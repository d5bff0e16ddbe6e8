import * as tf from "@tensorflow/tfjs";
import { ADAMW_DEFAULTS, type AdamWOptions, type AdamWState } from "@lowrank/core/internal";

export type { AdamWOptions, AdamWState };

/**
 * AdamW (Loshchilov & Hutter) as PyTorch implements it: decoupled weight decay
 * p ← p − lr·λ·p, then the Adam update with bias correction. tfjs has only Adam.
 */
export class AdamW {
  private step = 0;
  private readonly m = new Map<string, tf.Tensor>();
  private readonly v = new Map<string, tf.Tensor>();
  private readonly beta1: number;
  private readonly beta2: number;
  private readonly epsilon: number;
  private readonly weightDecay: number;

  constructor(
    private readonly variables: ReadonlyMap<string, tf.Variable>,
    options: AdamWOptions = {},
  ) {
    this.beta1 = options.beta1 ?? ADAMW_DEFAULTS.beta1;
    this.beta2 = options.beta2 ?? ADAMW_DEFAULTS.beta2;
    this.epsilon = options.epsilon ?? ADAMW_DEFAULTS.epsilon;
    this.weightDecay = options.weightDecay ?? ADAMW_DEFAULTS.weightDecay;
  }

  get stepCount(): number {
    return this.step;
  }

  /** Applies one update with learning rate `lr`; `grads` by the same names as the variables. */
  apply(grads: ReadonlyMap<string, tf.Tensor>, lr: number): void {
    this.step += 1;
    const t = this.step;
    const c1 = 1 - this.beta1 ** t;
    const c2 = 1 - this.beta2 ** t;
    for (const [name, variable] of this.variables) {
      const g = grads.get(name);
      if (!g) continue;
      tf.tidy(() => {
        const m = this.m.get(name) ?? tf.zerosLike(g);
        const v = this.v.get(name) ?? tf.zerosLike(g);
        const m2 = tf.add(tf.mul(m, this.beta1), tf.mul(g, 1 - this.beta1));
        const v2 = tf.add(tf.mul(v, this.beta2), tf.mul(tf.square(g), 1 - this.beta2));
        const decayed = this.weightDecay > 0 ? tf.mul(variable, 1 - lr * this.weightDecay) : variable;
        const update = tf.div(tf.div(m2, c1), tf.add(tf.sqrt(tf.div(v2, c2)), this.epsilon));
        variable.assign(tf.sub(decayed, tf.mul(update, lr)));
        this.m.get(name)?.dispose();
        this.v.get(name)?.dispose();
        this.m.set(name, tf.keep(m2));
        this.v.set(name, tf.keep(v2));
      });
    }
  }

  getState(): AdamWState {
    const read = (map: Map<string, tf.Tensor>) => new Map([...map].map(([k, t]) => [k, t.dataSync() as Float32Array]));
    return { step: this.step, m: read(this.m), v: read(this.v) };
  }

  setState(state: AdamWState): void {
    this.dispose();
    this.step = state.step;
    for (const [name, variable] of this.variables) {
      const m = state.m.get(name);
      const v = state.v.get(name);
      if (m) this.m.set(name, tf.tensor(m, variable.shape));
      if (v) this.v.set(name, tf.tensor(v, variable.shape));
    }
  }

  dispose(): void {
    for (const t of [...this.m.values(), ...this.v.values()]) t.dispose();
    this.m.clear();
    this.v.clear();
  }
}
