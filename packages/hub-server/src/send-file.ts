import { createReadStream } from "node:fs";
import { pipeline } from "node:stream/promises";
import type { HubRequest } from "./hub-request.js";

/** What to send: a file on disk (streamed) or bytes in memory, with its quoted-less etag. */
export interface FileBody {
  source: { file: string } | { bytes: Buffer };
  size: number;
  /** Entity tag without quotes. */
  etag: string;
  headers: Record<string, string>;
}

type RangeResult = { start: number; end: number } | "unsatisfiable" | undefined;

/** Parses a single `bytes=` range; multi-range requests are ignored (whole file sent). */
function parseRange(header: string | undefined, size: number): RangeResult {
  if (header === undefined) return undefined;
  const value = header.trim();
  if (!/^bytes=/i.test(value)) return undefined;
  if (value.includes(",")) return undefined;
  const match = /^bytes=\s*(\d*)\s*-\s*(\d*)\s*$/i.exec(value);
  if (!match || (match[1] === "" && match[2] === "")) return "unsatisfiable";
  if (match[1] === "") {
    const suffix = Number(match[2]);
    if (suffix === 0 || size === 0) return "unsatisfiable";
    return { start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(match[1]);
  const end = match[2] === "" ? size - 1 : Math.min(Number(match[2]), size - 1);
  if (start >= size || start > end) return "unsatisfiable";
  return { start, end };
}

function etagMatches(header: string, etag: string): boolean {
  return header.split(",").some((raw) => {
    const tag = raw.trim().replace(/^W\//, "");
    return tag === "*" || tag === `"${etag}"` || tag === etag;
  });
}

/**
 * Sends file content with `ETag`, `Accept-Ranges`, conditional (`If-None-Match` → 304,
 * `If-Range`) and single-range (`Range` → 206 / 416) support; HEAD gets headers only. Files are
 * streamed from disk, never loaded whole. Empty files answer ranges with 200 and
 * `Content-Range: bytes *\/0` so that clients probing with `bytes=0-0` learn the size.
 */
export async function sendFile(hr: HubRequest, body: FileBody): Promise<void> {
  const { req, res } = hr;
  const quoted = `"${body.etag}"`;
  const headers: Record<string, string> = {
    "Content-Type": "application/octet-stream",
    "Accept-Ranges": "bytes",
    ETag: quoted,
    ...body.headers,
  };
  const ifNoneMatch = req.headers["if-none-match"];
  if (ifNoneMatch && etagMatches(ifNoneMatch, body.etag)) {
    res.writeHead(304, { ETag: quoted, ...body.headers });
    res.end();
    return;
  }
  const ifRange = req.headers["if-range"] === undefined ? undefined : String(req.headers["if-range"]);
  const rangeHeader = ifRange && !etagMatches(ifRange, body.etag) ? undefined : req.headers.range;
  let range = parseRange(rangeHeader, body.size);
  if (body.size === 0 && range !== undefined) {
    headers["Content-Range"] = "bytes */0";
    range = undefined;
  }
  if (range === "unsatisfiable") {
    res.writeHead(416, { "Content-Range": `bytes */${body.size}`, "Content-Type": "application/json; charset=utf-8", ETag: quoted });
    res.end(hr.method === "HEAD" ? undefined : JSON.stringify({ error: `Range not satisfiable: ${rangeHeader} (size ${body.size})` }));
    return;
  }
  const start = range?.start ?? 0;
  const end = range?.end ?? body.size - 1;
  const length = body.size === 0 ? 0 : end - start + 1;
  if (range) headers["Content-Range"] = `bytes ${start}-${end}/${body.size}`;
  headers["Content-Length"] = String(length);
  res.writeHead(range ? 206 : 200, headers);
  if (hr.method === "HEAD" || length === 0) {
    res.end();
    return;
  }
  if ("bytes" in body.source) {
    res.end(body.source.bytes.subarray(start, end + 1));
    return;
  }
  try {
    await pipeline(createReadStream(body.source.file, { start, end }), res);
  } catch {
    // Client went away or the file vanished mid-stream: the connection is closed by pipeline.
    res.destroy();
  }
}
