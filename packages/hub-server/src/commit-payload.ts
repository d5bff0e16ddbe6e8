import { HubHttpError } from "./hub-error.js";
import { assertRepoPath, isCommitOid, isSha256 } from "./validation.js";

/** One operation of a commit request, validated. */
export type CommitOperation =
  | { kind: "file"; path: string; content: Buffer }
  | { kind: "lfsFile"; path: string; oid: string; size?: number }
  | { kind: "deletedFile"; path: string }
  | { kind: "deletedFolder"; path: string };

/** A parsed commit request body. */
export interface CommitPayload {
  summary: string;
  description?: string;
  parentCommit?: string;
  operations: CommitOperation[];
}

const BASE64 = /^[A-Za-z0-9+/\s]*={0,2}\s*$/;

function decodeContent(value: Record<string, unknown>, path: string): Buffer {
  if (typeof value.content !== "string") throw HubHttpError.badRequest(`Missing "content" for file ${path}`);
  const encoding = value.encoding ?? "base64";
  if (encoding === "base64") {
    if (!BASE64.test(value.content)) throw HubHttpError.badRequest(`Content of ${path} is not valid base64`);
    return Buffer.from(value.content, "base64");
  }
  if (encoding === "utf-8" || encoding === "utf8") return Buffer.from(value.content, "utf8");
  throw HubHttpError.badRequest(`Unsupported encoding for ${path}: ${String(encoding)}`);
}

function operation(key: string, raw: unknown): CommitOperation {
  const value = (raw ?? {}) as Record<string, unknown>;
  switch (key) {
    case "file": {
      assertRepoPath(value.path);
      return { kind: "file", path: value.path, content: decodeContent(value, value.path) };
    }
    case "lfsFile": {
      assertRepoPath(value.path);
      if (value.algo !== undefined && value.algo !== "sha256")
        throw HubHttpError.badRequest(`Unsupported LFS hash algorithm for ${value.path}: ${String(value.algo)}`);
      if (!isSha256(value.oid)) throw HubHttpError.badRequest(`Invalid LFS oid for ${value.path}: expected 64 hex characters`);
      if (value.size !== undefined && value.size !== null && !(Number.isSafeInteger(value.size) && (value.size as number) >= 0)) {
        throw HubHttpError.badRequest(`Invalid LFS size for ${value.path}`);
      }
      return { kind: "lfsFile", path: value.path, oid: value.oid, size: (value.size ?? undefined) as number | undefined };
    }
    case "deletedFile": {
      assertRepoPath(value.path);
      return { kind: "deletedFile", path: value.path };
    }
    case "deletedFolder": {
      const path = typeof value.path === "string" ? value.path.replace(/\/+$/, "") : value.path;
      assertRepoPath(path);
      return { kind: "deletedFolder", path };
    }
    default:
      throw HubHttpError.badRequest(`Unknown commit operation: ${JSON.stringify(key)}`);
  }
}

function header(value: Record<string, unknown>, payload: CommitPayload): void {
  if (value.summary !== undefined && value.summary !== null) {
    if (typeof value.summary !== "string") throw HubHttpError.badRequest('"summary" must be a string');
    payload.summary = value.summary;
  }
  if (typeof value.description === "string") payload.description = value.description;
  if (value.parentCommit !== undefined && value.parentCommit !== null) {
    if (typeof value.parentCommit !== "string" || !isCommitOid(value.parentCommit)) throw HubHttpError.badRequest('"parentCommit" must be a 40-hex commit id');
    payload.parentCommit = value.parentCommit;
  }
}

/**
 * Parses a commit body: NDJSON lines `{ key: "header"|"file"|"lfsFile"|"deletedFile"|"deletedFolder", value }`
 * (what both @huggingface/hub and huggingface_hub send), or the older JSON form
 * `{ summary, description?, parentCommit?, files?, lfsFiles?, deletedFiles?, deletedFolders? }`.
 * Every path is validated here, before anything is written.
 */
export function parseCommitPayload(body: Buffer): CommitPayload {
  const text = body.toString("utf8");
  const payload: CommitPayload = { summary: "", operations: [] };
  const lines = text.split(/\r?\n/).filter((line) => line.trim() !== "");
  if (lines.length === 0) throw HubHttpError.badRequest("Commit body is empty");
  const whole = tryParse(text);
  if (whole && typeof whole === "object" && !Array.isArray(whole) && !("key" in whole)) {
    header(whole, payload);
    const lists: Array<[string, unknown]> = [
      ["file", whole.files],
      ["lfsFile", whole.lfsFiles],
      ["deletedFile", whole.deletedFiles],
      ["deletedFolder", whole.deletedFolders],
    ];
    for (const [key, list] of lists) {
      if (list === undefined) continue;
      if (!Array.isArray(list)) throw HubHttpError.badRequest(`"${key}s" must be an array`);
      for (const item of list) payload.operations.push(operation(key, item));
    }
  } else {
    for (const [i, text] of lines.entries()) {
      const line = tryParse(text);
      if (!line || typeof line !== "object" || typeof line.key !== "string") {
        throw HubHttpError.badRequest(`Commit body line ${i + 1} must be a JSON object { key, value }`);
      }
      if (line.key === "header") header((line.value ?? {}) as Record<string, unknown>, payload);
      else payload.operations.push(operation(line.key, line.value));
    }
  }
  if (payload.summary.trim() === "") payload.summary = "Update files";
  return payload;
}

function tryParse(text: string): Record<string, unknown> | undefined {
  try {
    return JSON.parse(text) as Record<string, unknown>;
  } catch {
    return undefined;
  }
}
