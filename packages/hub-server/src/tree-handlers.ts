import { FileTree, type TreeEntryJson } from "./file-tree.js";
import { HubHttpError } from "./hub-error.js";
import type { HubRequest } from "./hub-request.js";
import { addLastCommits } from "./last-commits.js";
import { resolveRevisionPath } from "./revision-path.js";
import { assertRepoPath, type RepoRef } from "./validation.js";

const DEFAULT_LIMIT = 1000;
const MAX_LIMIT = 10_000;
const MAX_PATHS = 10_000;

/** Paging cursor: the listed commit (so pages stay consistent when the branch moves) and an offset. */
interface Cursor {
  c: string;
  o: number;
}

function decodeCursor(raw: string | null): Cursor | undefined {
  if (!raw) return undefined;
  try {
    const value = JSON.parse(Buffer.from(raw, "base64url").toString("utf8")) as Cursor;
    if (typeof value.c === "string" && Number.isInteger(value.o) && value.o >= 0) return value;
  } catch {
    // fall through
  }
  throw HubHttpError.badRequest("Invalid cursor");
}

/** Handlers of `/tree` and `/paths-info`. */
export const treeHandlers = {
  /**
   * `GET /api/{type}s/{repo}/tree/{rev}[/{path}]?recursive=&expand=&cursor=&limit=`: entries of a
   * folder (direct children, or all descendants with `recursive`), at most `limit` per page, with a
   * `Link: <…>; rel="next"` header while more remain.
   */
  async tree(hr: HubRequest, repo: RepoRef, rest: string[]): Promise<void> {
    await hr.openRepo(repo, "read");
    const { storage } = hr.ctx;
    const resolved = await resolveRevisionPath(storage, repo, rest, { pathRequired: false });
    const cursor = decodeCursor(hr.url.searchParams.get("cursor"));
    const commit = cursor ? await storage.readCommit(repo, cursor.c) : resolved.commit;
    if (!commit) throw HubHttpError.badRequest("Invalid cursor");
    const tree = FileTree.of(commit);
    const folder = resolved.path;
    if (folder !== "") assertRepoPath(folder);
    if (!tree.isFolder(folder)) {
      throw commit.files[folder]
        ? new HubHttpError(404, `${folder} is a file, not a folder, at revision ${resolved.revision}`, "EntryNotFound")
        : HubHttpError.entryNotFound(folder, resolved.revision);
    }
    const limitParam = Number(hr.url.searchParams.get("limit") ?? DEFAULT_LIMIT);
    const limit = Number.isInteger(limitParam) && limitParam > 0 ? Math.min(limitParam, MAX_LIMIT) : DEFAULT_LIMIT;
    const recursive = hr.flag("recursive");
    const all = tree.list(folder, recursive);
    const offset = cursor?.o ?? 0;
    const page = all.slice(offset, offset + limit);
    if (hr.flag("expand")) await addLastCommits(storage, repo, commit, page);
    const headers: Record<string, string> = {};
    if (offset + limit < all.length) {
      const next = new URL(hr.url.pathname + hr.url.search, hr.baseUrl);
      next.searchParams.set("cursor", Buffer.from(JSON.stringify({ c: commit.oid, o: offset + limit })).toString("base64url"));
      headers.Link = `<${next.href}>; rel="next"`;
    }
    hr.sendJson(200, page, headers);
  },

  /**
   * `POST /api/{type}s/{repo}/paths-info/{rev}`: entries of the given paths that exist. Accepts
   * JSON `{ paths, expand }` (@huggingface/hub) and form-encoded repeated `paths=` plus
   * `expand=True` (huggingface_hub, Python).
   */
  async pathsInfo(hr: HubRequest, repo: RepoRef, rest: string[]): Promise<void> {
    await hr.openRepo(repo, "read");
    const body = await hr.readBody(16 * 1024 * 1024);
    const contentType = String(hr.req.headers["content-type"] ?? "");
    let paths: unknown;
    let expand: unknown;
    if (contentType.includes("application/x-www-form-urlencoded")) {
      const form = new URLSearchParams(body.toString("utf8"));
      paths = form.getAll("paths");
      expand = ["1", "true"].includes((form.get("expand") ?? "").toLowerCase());
    } else {
      let json: Record<string, unknown>;
      try {
        json = JSON.parse(body.toString("utf8")) as Record<string, unknown>;
      } catch {
        throw HubHttpError.badRequest("Request body must be JSON { paths, expand } or form-encoded paths=…");
      }
      paths = typeof json?.paths === "string" ? [json.paths] : json?.paths;
      expand = json?.expand === true || json?.expand === "true" || json?.expand === 1;
    }
    if (!Array.isArray(paths) || paths.some((p) => typeof p !== "string")) throw HubHttpError.badRequest('"paths" must be a list of strings');
    if (paths.length > MAX_PATHS) throw HubHttpError.badRequest(`Too many paths (max ${MAX_PATHS})`);
    const { commit } = await resolveRevisionPath(hr.ctx.storage, repo, rest, { pathRequired: false });
    const tree = FileTree.of(commit);
    const seen = new Set<string>();
    const entries: TreeEntryJson[] = [];
    for (const raw of paths as string[]) {
      const path = raw.replace(/\/+$/, "");
      if (path !== "") assertRepoPath(path);
      if (seen.has(path)) continue;
      seen.add(path);
      const entry = tree.entry(path);
      if (entry) entries.push(entry);
    }
    if (expand) await addLastCommits(hr.ctx.storage, repo, commit, entries);
    hr.sendJson(200, entries);
  },
};
