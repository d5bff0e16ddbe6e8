import { HubHttpError } from "./hub-error.js";
import type { HubRequest } from "./hub-request.js";
import { repoLabel, tagNameProblem, type RepoRef } from "./validation.js";

function decodedName(rest: string[], what: string): string {
  try {
    return rest.map((s) => decodeURIComponent(s)).join("/");
  } catch {
    throw HubHttpError.badRequest(`Malformed percent-encoding in ${what}`);
  }
}

/** Handlers of `/api/{type}s/{repo}/tag/…`: tags name commits, and resolve like branches. */
export const tagHandlers = {
  /**
   * `POST /api/{type}s/{repo}/tag/{revision}` with JSON `{ tag, message? }` (huggingface_hub's
   * create_tag): tags the commit `revision` resolves to. 409 when the tag (or a branch of that
   * name) exists, 404 RevisionNotFound for an unknown revision, 400 for a bad tag name.
   */
  async create(hr: HubRequest, repo: RepoRef, rest: string[]): Promise<void> {
    await hr.openRepo(repo, "write");
    const body = (await hr.readJson()) as { tag?: unknown; message?: unknown } | null;
    if (!body || typeof body !== "object" || typeof body.tag !== "string") throw HubHttpError.badRequest('"tag" must be the name of the tag to create');
    if (body.message !== undefined && body.message !== null && typeof body.message !== "string") throw HubHttpError.badRequest('"message" must be a string');
    const problem = tagNameProblem(body.tag);
    if (problem) throw HubHttpError.badRequest(problem);
    const revision = decodedName(rest, "revision");
    const commit = await hr.ctx.storage.resolveRevision(repo, revision);
    if (!commit) throw HubHttpError.revisionNotFound(repoLabel(repo), revision);
    await hr.ctx.storage.createTag(repo, body.tag, commit.oid, (body.message as string | null | undefined) ?? undefined);
    hr.ctx.logger.info(`created tag ${body.tag} of ${repoLabel(repo)} at ${commit.oid}`);
    hr.sendJson(200, {});
  },

  /** `DELETE /api/{type}s/{repo}/tag/{tag}`: 404 RevisionNotFound when there is no such tag. */
  async remove(hr: HubRequest, repo: RepoRef, rest: string[]): Promise<void> {
    await hr.openRepo(repo, "write");
    const tag = decodedName(rest, "tag name");
    await hr.ctx.storage.deleteTag(repo, tag);
    hr.ctx.logger.info(`deleted tag ${tag} of ${repoLabel(repo)}`);
    hr.sendJson(200, {});
  },
};
