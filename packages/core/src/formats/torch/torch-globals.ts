import { printable } from "./torch-format-error.js";
import { STORAGE_CLASS_DTYPES } from "./torch-dtypes.js";
import { describeValue, PickleDict, PickleGlobal, PickleTuple, TorchStorageRef, TorchTensorRef, type PickleValue } from "./pickle-values.js";

/** Builds an error from a description of the problem; the caller adds file and opcode context. */
export type Fail = (problem: string) => Error;

const ALLOWED_LIST = "only torch._utils._rebuild_tensor_v2, torch._utils._rebuild_parameter, torch.*Storage, collections.OrderedDict";
const MAX_DIMS = 64;

/**
 * The whitelist of globals: maps `module`/`name` from a GLOBAL or STACK_GLOBAL opcode to an inert reference,
 * or fails. Nothing is imported or called.
 */
export function resolveGlobal(module: string, name: string, fail: Fail): PickleGlobal {
  const qualified = `${module}.${name}`;
  if (module === "torch._utils" && name === "_rebuild_tensor_v2") return new PickleGlobal(qualified, { kind: "rebuild_tensor_v2" });
  if (module === "torch._utils" && name === "_rebuild_parameter") return new PickleGlobal(qualified, { kind: "rebuild_parameter" });
  if (module === "collections" && name === "OrderedDict") return new PickleGlobal(qualified, { kind: "ordered_dict" });
  const dtype = module === "torch" ? STORAGE_CLASS_DTYPES.get(name) : undefined;
  if (dtype !== undefined) return new PickleGlobal(qualified, { kind: "storage", dtype });
  throw fail(`refers to ${printable(qualified)}, which is not allowed (${ALLOWED_LIST})`);
}

/** Interprets REDUCE of an allowed callable on an argument tuple, validating every argument. */
export function reduceGlobal(callable: PickleValue, args: PickleValue, fail: Fail): PickleValue {
  if (!(callable instanceof PickleGlobal)) throw fail(`cannot call a ${describeValue(callable)} (only allowed globals are callable)`);
  if (!(args instanceof PickleTuple)) throw fail(`needs an argument tuple for ${callable.qualifiedName}, got ${describeValue(args)}`);
  const items = args.items;
  switch (callable.target.kind) {
    case "ordered_dict":
      if (items.length !== 0) throw fail(`supports collections.OrderedDict() only without arguments, got ${items.length}`);
      return new PickleDict(true);
    case "rebuild_tensor_v2":
      return rebuildTensor(items, fail);
    case "rebuild_parameter":
      return rebuildParameter(items, fail);
    case "storage":
      throw fail(`cannot call ${callable.qualifiedName}: storage classes may only appear in persistent ids`);
  }
}

/** Interprets a BINPERSID id: ("storage", torch.<X>Storage, key, location, numel). */
export function loadPersistentId(pid: PickleValue, fail: Fail): TorchStorageRef {
  if (!(pid instanceof PickleTuple) || pid.items.length !== 5 || pid.items[0] !== "storage") {
    throw fail(`expects a persistent id ("storage", class, key, location, numel), got ${describeValue(pid)}`);
  }
  // length checked above
  const [, storageClass, key, location, numel] = pid.items as readonly [PickleValue, PickleValue, PickleValue, PickleValue, PickleValue];
  if (!(storageClass instanceof PickleGlobal) || storageClass.target.kind !== "storage") {
    throw fail(`expects a torch.*Storage class in the persistent id, got ${describeValue(storageClass)}`);
  }
  if (typeof key !== "string" || key.length === 0) throw fail(`expects a storage key string in the persistent id, got ${describeValue(key)}`);
  if (typeof location !== "string") throw fail(`expects a location string in the persistent id, got ${describeValue(location)}`);
  return new TorchStorageRef(key, storageClass.target.dtype, location, count(numel, "storage numel", fail));
}

function rebuildTensor(items: readonly PickleValue[], fail: Fail): TorchTensorRef {
  if (items.length !== 6 && items.length !== 7) {
    throw fail(`expects 6 or 7 arguments for torch._utils._rebuild_tensor_v2, got ${items.length}`);
  }
  // 6 or 7 items, checked above.
  const [storage, offset, size, stride, requiresGrad, hooks] = items as readonly [
    PickleValue,
    PickleValue,
    PickleValue,
    PickleValue,
    PickleValue,
    PickleValue,
    ...PickleValue[],
  ];
  if (!(storage instanceof TorchStorageRef)) throw fail(`expects a storage as tensor argument 1, got ${describeValue(storage)}`);
  const shape = dims(size, "size", fail);
  const strides = dims(stride, "stride", fail);
  if (shape.length !== strides.length) throw fail(`has a tensor with ${shape.length} sizes but ${strides.length} strides`);
  if (typeof requiresGrad !== "boolean") throw fail(`expects a bool requires_grad, got ${describeValue(requiresGrad)}`);
  if (!(hooks instanceof PickleDict)) throw fail(`expects backward hooks as an OrderedDict, got ${describeValue(hooks)}`);
  return new TorchTensorRef(storage, count(offset, "storage offset", fail), shape, strides, requiresGrad);
}

function rebuildParameter(items: readonly PickleValue[], fail: Fail): TorchTensorRef {
  if (items.length !== 3) throw fail(`expects 3 arguments for torch._utils._rebuild_parameter, got ${items.length}`);
  const [tensor, requiresGrad, hooks] = items as readonly [PickleValue, PickleValue, PickleValue]; // length checked above
  if (!(tensor instanceof TorchTensorRef)) throw fail(`expects a tensor as parameter data, got ${describeValue(tensor)}`);
  if (typeof requiresGrad !== "boolean") throw fail(`expects a bool requires_grad, got ${describeValue(requiresGrad)}`);
  if (!(hooks instanceof PickleDict)) throw fail(`expects backward hooks as an OrderedDict, got ${describeValue(hooks)}`);
  return new TorchTensorRef(tensor.storage, tensor.storageOffset, tensor.size, tensor.stride, requiresGrad);
}

function dims(value: PickleValue, what: string, fail: Fail): number[] {
  if (!(value instanceof PickleTuple)) throw fail(`expects the tensor ${what} as a tuple, got ${describeValue(value)}`);
  if (value.items.length > MAX_DIMS) throw fail(`has a tensor ${what} with ${value.items.length} dimensions (at most ${MAX_DIMS})`);
  return value.items.map((item) => count(item, `tensor ${what} entry`, fail));
}

function count(value: PickleValue, what: string, fail: Fail): number {
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 0) {
    const shown = typeof value === "number" || typeof value === "bigint" ? String(value) : describeValue(value);
    throw fail(`expects the ${what} to be a non-negative integer, got ${shown}`);
  }
  return value;
}
