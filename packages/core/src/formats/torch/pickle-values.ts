import type { TorchDType } from "./torch-dtypes.js";

/**
 * The values the safe pickle reader can build. There are no Python objects: only plain data, the few allowed
 * globals as inert references, and torch storage/tensor descriptions that point into the zip archive.
 */
export type PickleValue = null | boolean | number | bigint | string | PickleTuple | PickleList | PickleDict | PickleGlobal | TorchStorageRef | TorchTensorRef;

/** A Python tuple. `depth` is its nesting depth (1 for a tuple of scalars). */
export class PickleTuple {
  constructor(
    readonly items: readonly PickleValue[],
    readonly depth: number,
  ) {}
}

/** A Python list. */
export class PickleList {
  readonly items: PickleValue[] = [];
  depth = 1;
}

/** A Python dict or collections.OrderedDict; keys keep insertion order. Tuple keys compare by identity. */
export class PickleDict {
  readonly entries = new Map<PickleValue, PickleValue>();
  depth = 1;
  constructor(readonly ordered: boolean) {}
}

/** What an allowed global stands for. */
export type AllowedGlobal = { kind: "rebuild_tensor_v2" } | { kind: "rebuild_parameter" } | { kind: "ordered_dict" } | { kind: "storage"; dtype: TorchDType };

/** A reference to one of the whitelisted globals; it is never executed, only interpreted. */
export class PickleGlobal {
  constructor(
    readonly qualifiedName: string,
    readonly target: AllowedGlobal,
  ) {}
}

/** A storage named by a persistent id: zip member `data/<key>`, `numel` elements of `dtype`. */
export class TorchStorageRef {
  constructor(
    readonly key: string,
    readonly dtype: TorchDType,
    readonly location: string,
    readonly numel: number,
  ) {}
}

/** A tensor view of a storage: offset and strides are in elements. */
export class TorchTensorRef {
  constructor(
    readonly storage: TorchStorageRef,
    readonly storageOffset: number,
    readonly size: readonly number[],
    readonly stride: readonly number[],
    readonly requiresGrad: boolean,
  ) {}
}

/** Nesting depth of a value: containers report their depth, everything else counts as 0. */
export function depthOf(value: PickleValue): number {
  return value instanceof PickleTuple || value instanceof PickleList || value instanceof PickleDict ? value.depth : 0;
}

/** A short type name for messages (never the value itself, which may be large or hostile). */
export function describeValue(value: PickleValue): string {
  if (value === null) return "None";
  if (typeof value === "boolean") return "bool";
  if (typeof value === "number") return Number.isInteger(value) ? "int" : "float";
  if (typeof value === "bigint") return "int";
  if (typeof value === "string") return "str";
  if (value instanceof PickleTuple) return `tuple of ${value.items.length}`;
  if (value instanceof PickleList) return "list";
  if (value instanceof PickleDict) return value.ordered ? "OrderedDict" : "dict";
  if (value instanceof PickleGlobal) return value.qualifiedName;
  if (value instanceof TorchStorageRef) return "storage";
  return "tensor";
}
