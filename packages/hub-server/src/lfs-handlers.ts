import { HubHttpError } from "./hub-error.js";
import type { HubRequest } from "./hub-request.js";
import { sendFile } from "./send-file.js";
import { isSha256, repoLabel, type RepoRef } from "./validation.js";

/** Default largest LFS object accepted (streamed to disk, never held in memory). */
export const MAX_LFS_OBJECT = 5 * 1024 * 1024 * 1024;
const LFS_JSON = "application/vnd.git-lfs+json";
const URL_TTL_SECONDS = 24 * 3600;

interface BatchObject {
  oid: unknown;
  size: unknown;
}

function objectPath(direction: "upload" | "download", repo: RepoRef, oid: string): string {
  return `/api/lfs/${direction}/${repo.type}/${repo.id}/${oid}`;
}

/** Handlers of the git-lfs batch API and of the (signed) object upload/download URLs it hands out. */
export const lfsHandlers = {
  /**
   * `POST /{repo}.git/info/lfs/objects/batch`: always the "basic" transfer. Uploads get a signed
   * PUT URL unless this repo already has the object; downloads get a signed GET URL or a
   * per-object 404 error.
   */
  async batch(hr: HubRequest, repo: RepoRef): Promise<void> {
    const body = (await hr.readJson(16 * 1024 * 1024)) as { operation?: unknown; objects?: unknown; hash_algo?: unknown };
    const operation = body?.operation;
    if (operation !== "upload" && operation !== "download") throw HubHttpError.badRequest('"operation" must be "upload" or "download"');
    await hr.openRepo(repo, operation === "upload" ? "write" : "read");
    if (body.hash_algo !== undefined && body.hash_algo !== "sha256" && body.hash_algo !== "sha_256") {
      throw new HubHttpError(409, `Unsupported hash algorithm: ${String(body.hash_algo)} (only sha256)`);
    }
    if (!Array.isArray(body.objects)) throw HubHttpError.badRequest('"objects" must be a list of { oid, size }');
    if (body.objects.length > 10_000) throw HubHttpError.badRequest("Too many objects in one batch (max 10000)");
    const { storage, signer } = hr.ctx;
    const objects = [];
    for (const object of body.objects as BatchObject[]) {
      const { oid, size } = object ?? {};
      if (!isSha256(oid) || !Number.isSafeInteger(size) || (size as number) < 0) {
        objects.push({ oid, size, error: { code: 422, message: "Invalid object: oid must be a sha256 and size a non-negative integer" } });
        continue;
      }
      const n = size as number;
      const have = await storage.lfsObjectSize(repo, oid);
      if (operation === "upload") {
        if (n > hr.ctx.limits.lfsObject) {
          objects.push({ oid, size: n, error: { code: 422, message: `Object too large (max ${hr.ctx.limits.lfsObject} bytes)` } });
        } else if (have === n) {
          objects.push({ oid, size: n, authenticated: true });
        } else {
          const pathname = objectPath("upload", repo, oid);
          const href = `${hr.baseUrl}${pathname}?${signer.sign("PUT", pathname, { size: String(n) }, URL_TTL_SECONDS)}`;
          objects.push({ oid, size: n, authenticated: true, actions: { upload: { href, header: {}, expires_in: URL_TTL_SECONDS } } });
        }
      } else if (have === undefined) {
        objects.push({ oid, size: n, error: { code: 404, message: "Object does not exist" } });
      } else {
        const pathname = objectPath("download", repo, oid);
        const href = `${hr.baseUrl}${pathname}?${signer.sign("GET", pathname, {}, URL_TTL_SECONDS)}`;
        objects.push({ oid, size: have, authenticated: true, actions: { download: { href, header: {}, expires_in: URL_TTL_SECONDS } } });
      }
    }
    hr.sendJson(200, { transfer: "basic", objects, hash_algo: "sha256" }, {}, LFS_JSON);
  },

  /**
   * `PUT /api/lfs/upload/{type}/{repo}/{oid}?size=N&expires=…&sig=…`: streams the body to a
   * temporary file while hashing it; stores it only when sha256 and size match (else 400).
   * Without a signature, a write-authorized caller may PUT with `?size=`.
   */
  async upload(hr: HubRequest, repo: RepoRef, oid: string): Promise<void> {
    if (!hr.ctx.signer.verify("PUT", hr.url)) {
      if (hr.url.searchParams.has("sig")) throw new HubHttpError(403, "Upload URL signature is invalid or expired");
      await hr.openRepo(repo, "write");
    } else if (!(await hr.ctx.storage.getRepo(repo))) {
      throw HubHttpError.repoNotFound(repoLabel(repo));
    }
    if (!isSha256(oid)) throw HubHttpError.badRequest("Object id must be a sha256 (64 lowercase hex characters)");
    const size = Number(hr.url.searchParams.get("size"));
    if (!Number.isSafeInteger(size) || size < 0) throw HubHttpError.badRequest('Missing or invalid "size" query parameter');
    if (size > hr.ctx.limits.lfsObject) throw new HubHttpError(413, `Object too large (max ${hr.ctx.limits.lfsObject} bytes)`, undefined, true);
    const declared = hr.req.headers["content-length"];
    if (declared !== undefined && Number(declared) !== size) {
      throw new HubHttpError(400, `Content-Length ${declared} does not match the object size ${size}`, undefined, Number(declared) > size);
    }
    await hr.ctx.storage.blobs.putStream(hr.req, { sha256: oid, size });
    await hr.ctx.storage.grantLfsObject(repo, oid);
    hr.ctx.logger.info(`stored LFS object ${oid} (${size} bytes) for ${repoLabel(repo)}`);
    hr.sendJson(200, {});
  },

  /** `GET /api/lfs/download/{type}/{repo}/{oid}?expires=…&sig=…`: the object's bytes (ranges supported). */
  async download(hr: HubRequest, repo: RepoRef, oid: string): Promise<void> {
    if (!hr.ctx.signer.verify("GET", hr.url)) {
      if (hr.url.searchParams.has("sig")) throw new HubHttpError(403, "Download URL signature is invalid or expired");
      await hr.openRepo(repo, "read");
    }
    const size = await hr.ctx.storage.lfsObjectSize(repo, oid);
    if (size === undefined) throw new HubHttpError(404, `LFS object not found: ${oid}`, "EntryNotFound");
    await sendFile(hr, { source: { file: hr.ctx.storage.blobs.pathOf(oid) }, size, etag: oid, headers: {} });
  },
};
