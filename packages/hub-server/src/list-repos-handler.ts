import { HubHttpError } from "./hub-error.js";
import type { HubRequest } from "./hub-request.js";
import type { RepoMeta } from "./hub-storage.js";
import type { RepoType } from "./validation.js";

const DEFAULT_LIMIT = 1000;
const MAX_LIMIT = 1000;

/** Sort keys as huggingface_hub and @huggingface/hub send them (camelCase), and the snake_case spelling. */
const SORT_KEYS: Record<string, "lastModified" | "createdAt" | "downloads" | "likes" | "trendingScore" | "id"> = {
  lastModified: "lastModified",
  last_modified: "lastModified",
  createdAt: "createdAt",
  created_at: "createdAt",
  downloads: "downloads",
  likes: "likes",
  trendingScore: "trendingScore",
  trending_score: "trendingScore",
  id: "id",
};

/** One entry of a listing, as the Hub lists repos (huggingface_hub's ModelInfo / DatasetInfo / SpaceInfo read it). */
interface ListedRepo {
  _id: string;
  id: string;
  modelId?: string;
  author?: string;
  private: boolean;
  gated: false;
  disabled: false;
  sha?: string;
  lastModified: string;
  createdAt: string;
  tags: string[];
  downloads: number;
  likes: number;
  trendingScore: number;
  sdk?: string;
}

function decodeCursor(raw: string | null): number {
  if (raw === null) return 0;
  try {
    const value = (JSON.parse(Buffer.from(raw, "base64url").toString("utf8")) as { o?: unknown }).o;
    if (Number.isSafeInteger(value) && (value as number) >= 0) return value as number;
  } catch {
    // fall through
  }
  throw HubHttpError.badRequest("Invalid cursor");
}

function positiveInt(raw: string | null, name: string): number | undefined {
  if (raw === null || raw === "") return undefined;
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n <= 0) throw HubHttpError.badRequest(`Invalid "${name}": ${JSON.stringify(raw)} (expected a positive integer)`);
  return n;
}

/**
 * `GET /api/models` (`/api/datasets`, `/api/spaces`) `?author=&search=&filter=&sort=&direction=&limit=&cursor=`:
 * the repos of that type as a JSON array of `{ _id, id, modelId, author, private, sha, lastModified,
 * createdAt, tags, downloads, likes, … }`. `author` keeps the repos of that namespace, `search` those
 * whose id contains every given text (case-insensitive), `filter` those with every given tag (tags
 * are not read from the cards yet: every entry has `tags: []`, so a filter matches nothing); `sort` (lastModified, createdAt, downloads,
 * likes, trendingScore, id) sorts descending unless `direction` is given and is not -1; without
 * `sort`, repos are listed by id. At most `limit` (≤ 1000) per page, with `Link: <…>; rel="next"`
 * while more remain. Private repos are listed only to callers who may read them (a valid token, or
 * loopback callers when the server has no tokens), like every other read of a private repo.
 */
export async function listReposHandler(hr: HubRequest, type: RepoType): Promise<void> {
  hr.caller.assertCredentialsValid();
  const params = hr.url.searchParams;
  const author = params.get("author")?.toLowerCase() || undefined;
  const searches = params
    .getAll("search")
    .map((s) => s.toLowerCase())
    .filter(Boolean);
  const filters = params
    .getAll("filter")
    .flatMap((f) => f.split(","))
    .map((f) => f.trim())
    .filter(Boolean);
  const sortParam = params.get("sort");
  const sort = sortParam === null || sortParam === "" ? undefined : SORT_KEYS[sortParam];
  if (sortParam && !sort)
    throw HubHttpError.badRequest(
      `Invalid "sort": ${JSON.stringify(sortParam)} (expected one of lastModified, createdAt, downloads, likes, trendingScore, id)`,
    );
  const direction = params.get("direction");
  const descending = sort !== undefined && (direction === null || direction === "" || direction === "-1");
  const limit = Math.min(positiveInt(params.get("limit"), "limit") ?? DEFAULT_LIMIT, MAX_LIMIT);
  const offset = decodeCursor(params.get("cursor"));
  const { storage } = hr.ctx;
  const visible = (await storage.listRepos(type)).filter((meta: RepoMeta) => {
    const id = meta.id.toLowerCase();
    if (meta.private && !hr.caller.canReadPrivate) return false;
    if (author !== undefined && !(id.includes("/") && id.split("/")[0] === author)) return false;
    return searches.every((s) => id.includes(s));
  });
  const entries = await Promise.all(
    visible.map(async (meta): Promise<ListedRepo> => {
      const head = await storage.resolveRevision({ type, id: meta.id }, "main");
      return {
        _id: meta._id,
        id: meta.id,
        ...(type === "model" ? { modelId: meta.id } : {}),
        ...(meta.id.includes("/") ? { author: meta.id.split("/")[0] } : {}),
        private: meta.private,
        gated: false,
        disabled: false,
        ...(head ? { sha: head.oid } : {}),
        lastModified: head?.date ?? meta.createdAt,
        createdAt: meta.createdAt,
        tags: [],
        downloads: 0,
        likes: 0,
        trendingScore: 0,
        ...(type === "space" ? { sdk: "static" } : {}),
      };
    }),
  );
  // Tags are not read from the cards (every entry has `tags: []`), so a tag filter matches nothing.
  const matching = entries.filter((entry) => filters.every((f) => entry.tags.includes(f)));
  const byId = (a: ListedRepo, b: ListedRepo) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
  matching.sort((a, b) => {
    if (sort === undefined || sort === "id") return (descending ? -1 : 1) * byId(a, b);
    const x = a[sort];
    const y = b[sort];
    const order = x < y ? -1 : x > y ? 1 : 0;
    return (descending ? -order : order) || byId(a, b);
  });
  const page = matching.slice(offset, offset + limit);
  const headers: Record<string, string> = {};
  if (offset + limit < matching.length) {
    const next = new URL(hr.url.pathname + hr.url.search, hr.baseUrl);
    next.searchParams.set("cursor", Buffer.from(JSON.stringify({ o: offset + limit })).toString("base64url"));
    headers.Link = `<${next.href}>; rel="next"`;
  }
  hr.sendJson(200, page, headers);
}
