import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";

/**
 * Signs short-lived URLs handed out by the LFS batch endpoint: the clients PUT/GET them without an
 * Authorization header (as with the Hub's pre-signed storage URLs). The key lives in memory only,
 * so URLs expire with the server process at the latest.
 */
export class UrlSigner {
  constructor(private readonly key: Buffer = randomBytes(32)) {}

  /** Query string (`expires=…&sig=…`, plus the given params) authorizing `method` on `pathname`. */
  sign(method: string, pathname: string, params: Record<string, string>, ttlSeconds = 3600): string {
    const search = new URLSearchParams(params);
    search.set("expires", String(Math.floor(Date.now() / 1000) + ttlSeconds));
    search.set("sig", this.mac(method, pathname, search));
    return search.toString();
  }

  /** True when the URL carries a valid, unexpired signature for `method`. */
  verify(method: string, url: URL): boolean {
    const sig = url.searchParams.get("sig");
    const expires = Number(url.searchParams.get("expires"));
    if (!sig || !Number.isFinite(expires) || expires * 1000 < Date.now()) return false;
    const expected = Buffer.from(this.mac(method, url.pathname, url.searchParams), "utf8");
    const given = Buffer.from(sig, "utf8");
    return expected.length === given.length && timingSafeEqual(expected, given);
  }

  private mac(method: string, pathname: string, search: URLSearchParams): string {
    const fields = [...search.entries()].filter(([k]) => k !== "sig").sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    const payload = [method.toUpperCase(), pathname, ...fields.map(([k, v]) => `${k}=${v}`)].join("\n");
    return createHmac("sha256", this.key).update(payload).digest("base64url");
  }
}
