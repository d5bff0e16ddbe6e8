# Makes ort-made.onnx_adapter with onnxruntime's own AdapterFormat (onnxruntime 1.30.0), for
# onnx-adapter-file.test.ts: two parameters (float32 [3, 2] = 0 … 5 / 4, float16 [2] = [1.5, -2]),
# adapter_version 3, model_version 7. Run: python make-ort-adapter.py
import numpy as np
import onnxruntime as ort

adapter = ort.AdapterFormat()
adapter.set_adapter_version(3)
adapter.set_model_version(7)
adapter.set_parameters({
    "model.layers.0.self_attn.q_proj.lora_A.weight": ort.OrtValue.ortvalue_from_numpy(np.arange(6, dtype=np.float32).reshape(3, 2) / 4),
    "model.layers.0.self_attn.q_proj.lora_B.weight": ort.OrtValue.ortvalue_from_numpy(np.array([1.5, -2], dtype=np.float16)),
})
adapter.export_adapter("ort-made.onnx_adapter")
