/**
 * LoRA's scaling factor: alpha / r, or alpha / √r with rsLoRA (Kalajdzievski 2023).
 * Mirrors PEFT's LoraLayer.update_layer.
 */
export function loraScaling(params: { alpha: number; r: number; useRslora: boolean }): number {
  return params.useRslora ? params.alpha / Math.sqrt(params.r) : params.alpha / params.r;
}
