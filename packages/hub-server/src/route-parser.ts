import { repoIdProblem, type RepoRef, type RepoType } from "./validation.js";
import { HubHttpError } from "./hub-error.js";

/** Actions under `/api/{type}s/{repo}/…`; `rest` holds the (still percent-encoded) segments after the action. */
export type RepoApiAction =
  | "info"
  | "tree"
  | "paths-info"
  | "preupload"
  | "commit"
  | "refs"
  | "branch"
  | "tag"
  | "commits"
  | "settings"
  | "xet-write-token"
  | "xet-read-token";

/** A parsed request path. */
export type Route =
  | { name: "whoami" }
  | { name: "create-repo" }
  | { name: "delete-repo" }
  | { name: "validate-yaml" }
  | { name: "list-repos"; type: RepoType }
  | { name: "repo-api"; action: RepoApiAction; repo: RepoRef; rest: string[] }
  | { name: "lfs-batch"; repo: RepoRef }
  | { name: "lfs-object"; direction: "upload" | "download"; repo: RepoRef; oid: string }
  | { name: "resolve"; raw: boolean; repo: RepoRef; rest: string[] };

const API_TYPES: Record<string, RepoType> = { models: "model", datasets: "dataset", spaces: "space" };
const SINGULAR_TYPES: Record<string, RepoType> = { model: "model", dataset: "dataset", space: "space" };
/** Action keyword → minimum and maximum number of segments after it. */
const ACTIONS: Record<string, [number, number]> = {
  revision: [1, Infinity],
  tree: [1, Infinity],
  "paths-info": [1, Infinity],
  preupload: [1, Infinity],
  commit: [1, Infinity],
  refs: [0, 0],
  branch: [1, Infinity],
  tag: [1, Infinity],
  commits: [1, Infinity],
  settings: [0, 0],
  "xet-write-token": [1, Infinity],
  "xet-read-token": [1, Infinity],
};
const LFS_BATCH_TAIL = ["info", "lfs", "objects", "batch"];

function decode(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    throw HubHttpError.badRequest(`Malformed percent-encoding in URL segment: ${segment}`);
  }
}

/** Repo id from 1 or 2 raw segments, or undefined when it is not a valid id. */
function repoFrom(type: RepoType, segments: string[]): RepoRef | undefined {
  const id = segments.map(decode).join("/");
  return repoIdProblem(id) ? undefined : { type, id };
}

/**
 * All readings of a request path, most likely first. A repo id may have one or two segments, so
 * `/api/models/gpt2/refs` is either the info of repo "gpt2/refs" or the refs of repo "gpt2"; the
 * caller picks the first candidate whose repo exists. An empty array means an unknown route.
 */
export function parseRoute(pathname: string): Route[] {
  const segments = pathname.split("/").slice(1);
  if (segments[segments.length - 1] === "" && segments.length > 1) segments.pop();
  if (segments[0] === "api") return parseApi(segments.slice(1));
  const type: RepoType = segments[0] === "datasets" ? "dataset" : segments[0] === "spaces" ? "space" : "model";
  const tail = type === "model" ? segments : segments.slice(1);
  const out: Route[] = [];
  const n = tail.length;
  if (n >= 5 && n <= 6 && LFS_BATCH_TAIL.every((s, i) => tail[n - 4 + i] === s) && tail[n - 5]!.endsWith(".git")) {
    const repoSegments = tail.slice(0, n - 4);
    repoSegments[repoSegments.length - 1] = repoSegments[repoSegments.length - 1]!.slice(0, -".git".length);
    const repo = repoFrom(type, repoSegments);
    if (repo) out.push({ name: "lfs-batch", repo });
    return out;
  }
  for (const repoLength of [2, 1]) {
    const keyword = tail[repoLength];
    if ((keyword === "resolve" || keyword === "raw") && n >= repoLength + 3) {
      const repo = repoFrom(type, tail.slice(0, repoLength));
      if (repo) out.push({ name: "resolve", raw: keyword === "raw", repo, rest: tail.slice(repoLength + 1) });
    }
  }
  return out;
}

/** A table lookup that sees only the table's own keys ("constructor" or "__proto__" in a URL find nothing). */
const own = <T>(table: Record<string, T>, key: string): T | undefined => (Object.hasOwn(table, key) ? table[key] : undefined);

function parseApi(segments: string[]): Route[] {
  const [first, second] = segments;
  if (first === undefined) return [];
  if (first === "whoami-v2" && segments.length === 1) return [{ name: "whoami" }];
  if (first === "validate-yaml" && segments.length === 1) return [{ name: "validate-yaml" }];
  if (first === "repos" && segments.length === 2) {
    if (second === "create") return [{ name: "create-repo" }];
    if (second === "delete") return [{ name: "delete-repo" }];
    return [];
  }
  if (first === "lfs" && (second === "upload" || second === "download") && segments.length >= 5 && segments.length <= 6) {
    const type = own(SINGULAR_TYPES, segments[2]!);
    const repo = type ? repoFrom(type, segments.slice(3, -1)) : undefined;
    return repo ? [{ name: "lfs-object", direction: second, repo, oid: segments[segments.length - 1]! }] : [];
  }
  const type = own(API_TYPES, first);
  if (!type) return [];
  if (segments.length === 1) return [{ name: "list-repos", type }];
  const tail = segments.slice(1);
  const out: Route[] = [];
  for (const repoLength of [2, 1]) {
    if (tail.length < repoLength) continue;
    const repo = repoFrom(type, tail.slice(0, repoLength));
    if (!repo) continue;
    const after = tail.slice(repoLength);
    if (after.length === 0) {
      out.push({ name: "repo-api", action: "info", repo, rest: [] });
      continue;
    }
    const arity = own(ACTIONS, after[0]!);
    if (!arity || after.length - 1 < arity[0] || after.length - 1 > arity[1]) continue;
    const action = after[0] === "revision" ? "info" : (after[0] as RepoApiAction);
    out.push({ name: "repo-api", action, repo, rest: after.slice(1) });
  }
  return out;
}
