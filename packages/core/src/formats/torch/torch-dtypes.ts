/** Element types a `torch.save` storage can hold, named as in safetensors. */
export type TorchDType = "F64" | "F32" | "F16" | "BF16" | "I64" | "I32" | "I16" | "I8" | "U8" | "BOOL";

/** Bytes per element of each dtype. */
export const DTYPE_ITEM_SIZE: Readonly<Record<TorchDType, number>> = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U8: 1,
  BOOL: 1,
};

/** The legacy typed storage classes (`torch.<Name>`) that may appear in a persistent id, with their dtypes. */
export const STORAGE_CLASS_DTYPES: ReadonlyMap<string, TorchDType> = new Map<string, TorchDType>([
  ["DoubleStorage", "F64"],
  ["FloatStorage", "F32"],
  ["HalfStorage", "F16"],
  ["BFloat16Storage", "BF16"],
  ["LongStorage", "I64"],
  ["IntStorage", "I32"],
  ["ShortStorage", "I16"],
  ["CharStorage", "I8"],
  ["ByteStorage", "U8"],
  ["BoolStorage", "BOOL"],
]);
