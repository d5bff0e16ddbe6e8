import { gitObjects } from "./git-objects.js";
import { HubHttpError } from "./hub-error.js";
import type { HubRequest } from "./hub-request.js";
import { resolveRevisionPath } from "./revision-path.js";
import { assertRepoId, assertRepoPath, branchNameProblem, repoLabel, repoUrlPrefix, type RepoRef, type RepoType } from "./validation.js";

const REPO_TYPES = new Set<RepoType>(["model", "dataset", "space"]);

/** Reads `{ name, organization?, type? }` as sent by both clients ("org/name" or name + organization). */
function repoFromBody(body: Record<string, unknown>): RepoRef {
  const name = body.name;
  const organization = body.organization;
  const type = (body.type ?? "model") as RepoType;
  if (typeof name !== "string" || name === "") throw HubHttpError.badRequest('"name" is required');
  if (organization !== undefined && organization !== null && typeof organization !== "string") throw HubHttpError.badRequest('"organization" must be a string');
  if (!REPO_TYPES.has(type)) throw HubHttpError.badRequest(`Unsupported repo type: ${String(type)} (expected model, dataset or space)`);
  let id = name;
  if (organization && !name.includes("/")) id = `${organization}/${name}`;
  else if (organization && !name.startsWith(`${organization}/`)) throw HubHttpError.badRequest(`"name" ${name} is not in organization ${organization}`);
  assertRepoId(id);
  return { type, id };
}

function asObject(value: unknown): Record<string, unknown> {
  if (!value || typeof value !== "object" || Array.isArray(value)) throw HubHttpError.badRequest("Expected a JSON object body");
  return value as Record<string, unknown>;
}

/** Handlers of repo-level endpoints: create/delete, info, settings, refs, branches, commits, whoami. */
export const repoHandlers = {
  /** `POST /api/repos/create` → `{ url, name, id }`; 409 when the repo exists. */
  async create(hr: HubRequest): Promise<void> {
    hr.caller.assertCanWrite();
    const body = asObject(await hr.readJson());
    const repo = repoFromBody(body);
    const isPrivate = body.private === true || body.visibility === "private";
    const files: Record<string, Uint8Array> = {};
    if (body.files !== undefined) {
      if (!Array.isArray(body.files)) throw HubHttpError.badRequest('"files" must be an array');
      for (const file of body.files as Array<Record<string, unknown>>) {
        assertRepoPath(file?.path);
        if (typeof file.content !== "string") throw HubHttpError.badRequest(`Missing content for ${file.path}`);
        files[file.path] = Buffer.from(file.content, file.encoding === "base64" ? "base64" : "utf8");
      }
    }
    const url = `${hr.baseUrl}/${repoUrlPrefix(repo.type)}${repo.id}`;
    try {
      await hr.ctx.storage.createRepo(repo, { private: isPrivate, files });
    } catch (error) {
      // Like the Hub, a 409 carries the repo's url (huggingface_hub's create_repo(exist_ok=True) reads it).
      throw error instanceof HubHttpError && error.status === 409 ? error.withBody({ url }) : error;
    }
    hr.ctx.logger.info(`created ${isPrivate ? "private " : ""}${repo.type} repo ${repo.id}`);
    hr.sendJson(200, { url, name: repo.id, id: repo.id });
  },

  /** `DELETE /api/repos/delete` with `{ name, organization?, type? }`. */
  async remove(hr: HubRequest): Promise<void> {
    hr.caller.assertCanWrite();
    const repo = repoFromBody(asObject(await hr.readJson()));
    await hr.openRepo(repo, "write");
    await hr.ctx.storage.deleteRepo(repo);
    hr.ctx.logger.info(`deleted ${repo.type} repo ${repo.id}`);
    hr.sendJson(200, {});
  },

  /** `GET /api/{type}s/{repo}[/revision/{rev}]`: Hub-style repo info with `sha` and `siblings`. */
  async info(hr: HubRequest, repo: RepoRef, rest: string[]): Promise<void> {
    const meta = await hr.openRepo(repo, "read");
    const { commit } = await resolveRevisionPath(hr.ctx.storage, repo, rest.length ? rest : ["main"], { pathRequired: false });
    const blobs = hr.flag("blobs");
    const siblings = Object.keys(commit.files)
      .sort()
      .map((rfilename) => {
        if (!blobs) return { rfilename };
        const f = commit.files[rfilename]!;
        const lfs = f.lfs ? { sha256: f.sha256, size: f.size, pointerSize: gitObjects.lfsPointerInfo(f.sha256, f.size).pointerSize } : undefined;
        return { rfilename, size: f.size, blobId: f.gitOid, ...(lfs ? { lfs } : {}) };
      });
    const author = repo.id.includes("/") ? repo.id.split("/")[0] : undefined;
    hr.sendJson(200, {
      _id: meta._id,
      id: repo.id,
      ...(repo.type === "model" ? { modelId: repo.id } : {}),
      ...(repo.type === "space" ? { sdk: "static" } : {}),
      author,
      sha: commit.oid,
      private: meta.private,
      gated: false,
      disabled: false,
      createdAt: meta.createdAt,
      lastModified: commit.date,
      siblings,
      tags: [],
      downloads: 0,
      likes: 0,
    });
  },

  /** `PUT /api/{type}s/{repo}/settings` with `{ private?: boolean, visibility? }`. */
  async settings(hr: HubRequest, repo: RepoRef): Promise<void> {
    await hr.openRepo(repo, "write");
    const body = asObject(await hr.readJson());
    const next = body.visibility === "private" || body.visibility === "public" ? body.visibility === "private" : body.private;
    if (next !== undefined && typeof next !== "boolean") throw HubHttpError.badRequest('"private" must be a boolean');
    const meta = await hr.ctx.storage.updateRepo(repo, { private: next });
    hr.sendJson(200, { private: meta.private });
  },

  /** `GET /api/{type}s/{repo}/refs` → `{ branches, tags, converts }`, each ref `{ name, ref, targetCommit }`. */
  async refs(hr: HubRequest, repo: RepoRef): Promise<void> {
    await hr.openRepo(repo, "read");
    const [branches, tags] = await Promise.all([hr.ctx.storage.listBranches(repo), hr.ctx.storage.listTags(repo)]);
    hr.sendJson(200, {
      branches: branches.map((b) => ({ name: b.name, ref: `refs/heads/${b.name}`, targetCommit: b.oid })),
      tags: tags.map((t) => ({ name: t.name, ref: `refs/tags/${t.name}`, targetCommit: t.oid })),
      converts: [],
      ...(hr.flag("include_prs") ? { pullRequests: [] } : {}),
    });
  },

  /** `POST` (create from main or `startingPoint`) and `DELETE /api/{type}s/{repo}/branch/{branch}`. */
  async branch(hr: HubRequest, repo: RepoRef, rest: string[]): Promise<void> {
    await hr.openRepo(repo, "write");
    let branch: string;
    try {
      branch = rest.map((s) => decodeURIComponent(s)).join("/");
    } catch {
      throw HubHttpError.badRequest("Malformed percent-encoding in branch name");
    }
    const problem = branchNameProblem(branch);
    if (problem) throw HubHttpError.badRequest(problem);
    const { storage } = hr.ctx;
    if (hr.method === "DELETE") {
      await storage.deleteBranch(repo, branch);
      hr.ctx.logger.info(`deleted branch ${branch} of ${repoLabel(repo)}`);
      hr.sendJson(200, {});
      return;
    }
    // An empty or non-JSON body means "from main" (clients send none); a too-large one is still a 413.
    const body =
      hr.req.headers["content-length"] === "0"
        ? {}
        : asObject(
            await hr.readJson().catch((error: unknown) => {
              if (error instanceof HubHttpError && error.status === 400) return {};
              throw error;
            }),
          );
    if (body.emptyBranch) throw HubHttpError.badRequest("Empty branches are not supported by this server");
    const start = typeof body.startingPoint === "string" ? body.startingPoint : "main";
    const commit = await storage.resolveRevision(repo, start);
    if (!commit) throw HubHttpError.revisionNotFound(repoLabel(repo), start);
    await storage.createBranch(repo, branch, commit.oid, body.overwrite === true);
    hr.ctx.logger.info(`created branch ${branch} of ${repoLabel(repo)} at ${commit.oid}`);
    hr.sendJson(200, {});
  },

  /** `GET /api/{type}s/{repo}/commits/{rev}?limit=&cursor=`: history, newest first, paged with `Link`. */
  async commits(hr: HubRequest, repo: RepoRef, rest: string[]): Promise<void> {
    await hr.openRepo(repo, "read");
    const { commit } = await resolveRevisionPath(hr.ctx.storage, repo, rest, { pathRequired: false });
    const limit = clampInt(hr.url.searchParams.get("limit"), 50, 1, 1000);
    const start = clampInt(hr.url.searchParams.get("cursor"), 0, 0, Number.MAX_SAFE_INTEGER);
    const out: unknown[] = [];
    let current: typeof commit | undefined = commit;
    for (let i = 0; current && out.length <= limit; i++) {
      if (i >= start) {
        const [title, ...body] = current.message.split("\n");
        out.push({ id: current.oid, title, message: body.join("\n").trim(), authors: current.author ? [{ user: current.author }] : [], date: current.date });
      }
      current = current.parent ? await hr.ctx.storage.readCommit(repo, current.parent) : undefined;
    }
    const headers: Record<string, string> = {};
    if (out.length > limit) {
      out.pop();
      const next = new URL(hr.url.pathname + hr.url.search, hr.baseUrl);
      next.searchParams.set("cursor", String(start + limit));
      headers.Link = `<${next.href}>; rel="next"`;
    }
    hr.sendJson(200, out, headers);
  },

  /** `GET /api/whoami-v2`: the single user behind every configured token. */
  async whoami(hr: HubRequest): Promise<void> {
    hr.caller.assertCredentialsValid();
    if (!hr.caller.tokenValid) throw new HubHttpError(401, "Invalid or missing access token");
    hr.sendJson(200, {
      type: "user",
      id: "lowrank",
      name: "lowrank",
      fullname: "lowrank",
      orgs: [],
      auth: { type: "access_token", accessToken: { displayName: "lowrank", role: "write" } },
    });
  },
};

function clampInt(raw: string | null, fallback: number, min: number, max: number): number {
  const n = raw === null || raw === "" ? fallback : Number(raw);
  return Number.isInteger(n) ? Math.min(max, Math.max(min, n)) : fallback;
}
