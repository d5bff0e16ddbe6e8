import { repoPathProblem } from "@lowrank/hub";
import { HubHttpError } from "./hub-error.js";

/** Repository kinds served by the hub. */
export type RepoType = "model" | "dataset" | "space";

/** A repository address: its kind and its id ("org/name" or "name"). */
export interface RepoRef {
  type: RepoType;
  id: string;
}

const REPO_ID = /^[A-Za-z0-9][\w.-]{0,95}(\/[A-Za-z0-9][\w.-]{0,95})?$/;
/** First segments that would collide with the server's own URL space. */
const RESERVED_NAMESPACES = new Set(["api", "datasets", "spaces", "models", "buckets", "kernels"]);
const BRANCH = /^[A-Za-z0-9][\w.\-/]{0,199}$/;
const COMMIT_OID = /^[0-9a-f]{40}$/;
const SHA256 = /^[0-9a-f]{64}$/;

/** Human-readable label for a repo, as the Hub prints it ("datasets/org/name" for datasets). */
export function repoLabel(ref: RepoRef): string {
  return ref.type === "model" ? ref.id : `${ref.type}s/${ref.id}`;
}

/** URL prefix of a repo's web routes ("" for models, "datasets/" for datasets, "spaces/" for spaces). */
export function repoUrlPrefix(type: RepoType): string {
  return type === "model" ? "" : `${type}s/`;
}

/** Why `id` is not an acceptable repository id, or undefined when it is. */
export function repoIdProblem(id: string): string | undefined {
  if (!REPO_ID.test(id)) return `Invalid repository id "${id}": expected "name" or "org/name" (letters, digits, "_", "-", ".")`;
  if (id.includes("..") || id.includes("--")) return `Invalid repository id "${id}": ".." and "--" are not allowed`;
  if (id.endsWith(".git") || id.endsWith(".")) return `Invalid repository id "${id}": must not end with ".git" or "."`;
  const namespace = id.split("/")[0] ?? "";
  if (RESERVED_NAMESPACES.has(namespace.toLowerCase())) return `Invalid repository id "${id}": "${namespace}" is reserved`;
  return undefined;
}

/** Throws a 400 when `id` is not an acceptable repository id. */
export function assertRepoId(id: string): void {
  const problem = repoIdProblem(id);
  if (problem) throw HubHttpError.badRequest(problem);
}

/** Throws a 400 when `path` is not an acceptable file path inside a repo (the rule the client shares: repoPathProblem). */
export function assertRepoPath(path: unknown): asserts path is string {
  const problem = repoPathProblem(path);
  if (problem) throw HubHttpError.badRequest(problem);
}

/** Why `name` is not an acceptable branch name, or undefined when it is. */
export function branchNameProblem(name: string): string | undefined {
  if (!BRANCH.test(name)) return `Invalid branch name "${name}"`;
  if (name.includes("..") || name.includes("//") || name.endsWith("/") || name.endsWith(".lock")) {
    return `Invalid branch name "${name}"`;
  }
  if (COMMIT_OID.test(name)) return `Invalid branch name "${name}": looks like a commit id`;
  if (name === "HEAD") return `Invalid branch name "HEAD"`;
  return undefined;
}

/** Why `name` is not an acceptable tag name (the rules of branch names), or undefined when it is. */
export function tagNameProblem(name: string): string | undefined {
  if (name.startsWith("refs/")) return `Invalid tag name "${name}": give the name without "refs/tags/"`;
  return branchNameProblem(name)?.replace("Invalid branch name", "Invalid tag name");
}

/** True for a 40-hex commit id. */
export function isCommitOid(value: string): boolean {
  return COMMIT_OID.test(value);
}

/** True for a 64-hex sha256. */
export function isSha256(value: unknown): value is string {
  return typeof value === "string" && SHA256.test(value);
}
