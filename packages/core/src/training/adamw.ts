/** AdamW hyper-parameters (PyTorch's defaults). */
export interface AdamWOptions {
  beta1?: number;
  beta2?: number;
  epsilon?: number;
  weightDecay?: number;
}

/** PyTorch's AdamW defaults. */
export const ADAMW_DEFAULTS: Readonly<Required<AdamWOptions>> = { beta1: 0.9, beta2: 0.999, epsilon: 1e-8, weightDecay: 0.01 };

/** Optimizer state as plain arrays, for checkpoints and exact resume. */
export interface AdamWState {
  step: number;
  m: Map<string, Float32Array>;
  v: Map<string, Float32Array>;
}

const f = Math.fround;

/**
 * AdamW (Loshchilov & Hutter) as PyTorch implements it, on Float32Arrays in place: decoupled weight
 * decay p ← p − lr·λ·p, then the Adam update with bias correction. Every operation is rounded to
 * float32 in the order TensorFlow.js's AdamW runs its ops, so both backends take the same steps.
 */
export class Float32AdamW {
  private step = 0;
  private readonly m = new Map<string, Float32Array>();
  private readonly v = new Map<string, Float32Array>();
  private readonly options: Required<AdamWOptions>;

  /** `params`: the trained arrays by name, updated in place by `apply`. */
  constructor(
    private readonly params: ReadonlyMap<string, Float32Array>,
    options: AdamWOptions = {},
  ) {
    this.options = { ...ADAMW_DEFAULTS, ...Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)) };
  }

  get stepCount(): number {
    return this.step;
  }

  /** Applies one update with learning rate `lr`; `grads` by the same names as the parameters. */
  apply(grads: ReadonlyMap<string, Float32Array>, lr: number): void {
    this.step += 1;
    const { beta1, beta2, epsilon, weightDecay } = this.options;
    const t = this.step;
    const c1 = f(1 - beta1 ** t);
    const c2 = f(1 - beta2 ** t);
    const b1 = f(beta1),
      nb1 = f(1 - beta1),
      b2 = f(beta2),
      nb2 = f(1 - beta2),
      eps = f(epsilon);
    const keep = f(1 - lr * weightDecay);
    const rate = f(lr);
    for (const [name, p] of this.params) {
      const g = grads.get(name);
      if (!g) continue;
      let m = this.m.get(name);
      let v = this.v.get(name);
      if (!m || !v) {
        m = new Float32Array(p.length);
        v = new Float32Array(p.length);
        this.m.set(name, m);
        this.v.set(name, v);
      }
      for (let i = 0; i < p.length; i++) {
        const gi = g[i]!;
        const mi = f(f(m[i]! * b1) + f(gi * nb1));
        const vi = f(f(v[i]! * b2) + f(f(gi * gi) * nb2));
        m[i] = mi;
        v[i] = vi;
        const decayed = weightDecay > 0 ? f(p[i]! * keep) : p[i]!;
        const update = f(f(mi / c1) / f(f(Math.sqrt(f(vi / c2))) + eps));
        p[i] = f(decayed - f(update * rate));
      }
    }
  }

  /** Copies of the moments (safe to keep while training continues). */
  getState(): AdamWState {
    const copy = (map: Map<string, Float32Array>) => new Map([...map].map(([k, a]) => [k, a.slice()]));
    return { step: this.step, m: copy(this.m), v: copy(this.v) };
  }

  setState(state: AdamWState): void {
    this.step = state.step;
    this.m.clear();
    this.v.clear();
    for (const name of this.params.keys()) {
      const m = state.m.get(name);
      const v = state.v.get(name);
      if (m) this.m.set(name, m.slice());
      if (v) this.v.set(name, v.slice());
    }
  }
}

/**
 * The global L2 norm of the gradients, and clipping to `maxNorm` as PyTorch's clip_grad_norm_ does
 * (factor maxNorm / (norm + 1e-6), only when the norm exceeds it; 0 or undefined: no clipping).
 * Scales the arrays in place; returns the norm before clipping.
 */
export function clipGradNorm(grads: ReadonlyMap<string, Float32Array>, maxNorm: number | undefined): number {
  let sum = 0;
  for (const g of grads.values()) for (let i = 0; i < g.length; i++) sum += g[i]! * g[i]!;
  const norm = Math.sqrt(sum);
  const limit = maxNorm ?? 0;
  if (limit > 0 && norm > limit) {
    const factor = f(limit / (norm + 1e-6));
    for (const g of grads.values()) for (let i = 0; i < g.length; i++) g[i] = f(g[i]! * factor);
  }
  return norm;
}
