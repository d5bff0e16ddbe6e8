import { HubHttpError } from "./hub-error.js";
import type { Commit, HubStorage } from "./hub-storage.js";
import { repoLabel, type RepoRef } from "./validation.js";

/** A revision resolved to a commit, plus the path that followed it in the URL. */
export interface RevisionPath {
  revision: string;
  commit: Commit;
  path: string;
}

function decode(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    throw HubHttpError.badRequest(`Malformed percent-encoding in URL segment: ${segment}`);
  }
}

/**
 * Splits raw URL segments into a revision and a path. The revision is usually one segment
 * (branches with "/" sent encoded as %2F), but clients that do not encode it send "feature/x" as
 * two segments, so longer prefixes are tried when the shorter ones are not a known revision.
 * Throws 404 RevisionNotFound when no prefix resolves.
 */
export async function resolveRevisionPath(storage: HubStorage, repo: RepoRef, segments: string[], options: { pathRequired: boolean }): Promise<RevisionPath> {
  const decoded = segments.map(decode);
  const maxRevisionSegments = options.pathRequired ? decoded.length - 1 : decoded.length;
  for (let k = 1; k <= maxRevisionSegments; k++) {
    const revision = decoded.slice(0, k).join("/");
    const commit = await storage.resolveRevision(repo, revision);
    if (commit) return { revision, commit, path: decoded.slice(k).join("/") };
  }
  throw HubHttpError.revisionNotFound(repoLabel(repo), decoded[0] ?? "");
}
