import { createHash } from "node:crypto";
import { readFile, stat } from "node:fs/promises";
import type { IncomingMessage } from "node:http";
import { HubHttpError } from "./hub-error.js";

/** Who sent a request, as far as authorization is concerned. Tokens themselves are never kept here. */
export class Caller {
  constructor(
    readonly loopback: boolean,
    readonly tokensConfigured: boolean,
    readonly tokenGiven: boolean,
    readonly tokenValid: boolean,
  ) {}

  /** May read private repos: a valid token, or (when no token is configured) a loopback address. */
  get canReadPrivate(): boolean {
    return this.tokensConfigured ? this.tokenValid : this.loopback;
  }

  /** 401 when a token was sent but is not one of the configured tokens (like the Hub). */
  assertCredentialsValid(): void {
    if (this.tokensConfigured && this.tokenGiven && !this.tokenValid) {
      throw new HubHttpError(401, "Invalid credentials in Authorization header");
    }
  }

  /** 401 without a valid token when tokens are configured; 403 from non-loopback addresses otherwise. */
  assertCanWrite(): void {
    this.assertCredentialsValid();
    if (this.tokensConfigured) {
      if (!this.tokenValid) throw new HubHttpError(401, "A valid access token is required for this operation (Authorization: Bearer <token>)");
    } else if (!this.loopback) {
      throw new HubHttpError(403, "This server has no access tokens configured: writes are accepted only from loopback addresses");
    }
  }
}

const hashToken = (token: string) => createHash("sha256").update(token, "utf8").digest("hex");

/**
 * The configured access tokens: `options.tokens` plus the lines of `<dir>/tokens` (blank lines and
 * lines starting with "#" ignored). The file is re-read when its modification time changes, so
 * tokens can be rotated without a restart. Only sha256 digests of tokens are kept in memory.
 */
export class TokenAuth {
  private fileDigests = new Set<string>();
  private fileStamp = "";

  constructor(
    private readonly optionDigests: Set<string>,
    private readonly tokensFile: string,
  ) {}

  /** Builds the token set from the options and the tokens file. */
  static async create(tokens: readonly string[], tokensFile: string): Promise<TokenAuth> {
    const auth = new TokenAuth(
      new Set(
        tokens
          .map((t) => t.trim())
          .filter(Boolean)
          .map(hashToken),
      ),
      tokensFile,
    );
    await auth.refresh();
    return auth;
  }

  /** Number of configured tokens (for startup messages). */
  get size(): number {
    return new Set([...this.optionDigests, ...this.fileDigests]).size;
  }

  /** Classifies the sender of a request. */
  async identify(req: IncomingMessage): Promise<Caller> {
    await this.refresh();
    const header = req.headers.authorization ?? "";
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
    const token = match?.[1];
    const digest = token ? hashToken(token) : undefined;
    const configured = this.optionDigests.size + this.fileDigests.size > 0;
    const valid = digest !== undefined && (this.optionDigests.has(digest) || this.fileDigests.has(digest));
    return new Caller(isLoopback(req.socket.remoteAddress), configured, header.trim() !== "", valid);
  }

  private async refresh(): Promise<void> {
    const info = await stat(this.tokensFile).catch(() => undefined);
    const stamp = info ? `${info.mtimeMs}:${info.size}` : "";
    if (stamp === this.fileStamp) return;
    const text = info ? await readFile(this.tokensFile, "utf8").catch(() => "") : "";
    this.fileDigests = new Set(
      text
        .split(/\r?\n/)
        .map((line) => line.trim())
        .filter((line) => line && !line.startsWith("#"))
        .map(hashToken),
    );
    this.fileStamp = stamp;
  }
}

function isLoopback(address: string | undefined): boolean {
  if (!address) return false;
  const v4 = address.startsWith("::ffff:") ? address.slice(7) : address;
  return v4.startsWith("127.") || address === "::1";
}
