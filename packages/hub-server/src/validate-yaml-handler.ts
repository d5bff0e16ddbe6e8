import { HubHttpError } from "./hub-error.js";
import type { HubRequest } from "./hub-request.js";
import { validateCard } from "./yaml-front-matter.js";

const REPO_TYPES = new Set(["model", "dataset", "space"]);
/** Largest card accepted for validation. */
const MAX_CARD_BYTES = 16 * 1024 * 1024;

/**
 * `POST /api/validate-yaml` with JSON `{ content, repoType }` (huggingface_hub calls it before every
 * commit that adds README.md; its older RepoCard.validate sends the same fields form-encoded):
 * checks the card's YAML metadata. Answers 200 `{ errors: [], warnings: [{ message }] }` when it is
 * valid (a card without metadata gets a warning, as on the Hub), else 400 with `error` (the first
 * problem, also in `X-Error-Message`) and `errors: [{ message }]` — what huggingface_hub turns into
 * "Invalid metadata in README.md." followed by the messages. No token is needed.
 */
export async function validateYamlHandler(hr: HubRequest): Promise<void> {
  hr.caller.assertCredentialsValid();
  const body = await hr.readBody(MAX_CARD_BYTES);
  let fields: { content?: unknown; repoType?: unknown };
  if (String(hr.req.headers["content-type"] ?? "").includes("application/x-www-form-urlencoded")) {
    const form = new URLSearchParams(body.toString("utf8"));
    fields = { content: form.get("content") ?? undefined, repoType: form.get("repoType") ?? undefined };
  } else {
    try {
      fields = JSON.parse(body.toString("utf8")) as typeof fields;
    } catch {
      throw HubHttpError.badRequest("Request body must be JSON { content, repoType }");
    }
    if (!fields || typeof fields !== "object" || Array.isArray(fields)) throw HubHttpError.badRequest("Request body must be JSON { content, repoType }");
  }
  if (typeof fields.content !== "string") throw HubHttpError.badRequest('"content" must be the text of the repo card (README.md)');
  const repoType = fields.repoType ?? "model";
  if (typeof repoType !== "string" || !REPO_TYPES.has(repoType))
    throw HubHttpError.badRequest(`Invalid "repoType": ${JSON.stringify(repoType)} (expected model, dataset or space)`);
  const { errors, warnings } = validateCard(fields.content, repoType);
  const list = (messages: string[]) => messages.map((message) => ({ message }));
  if (errors.length > 0) throw HubHttpError.badRequest(errors[0]!).withBody({ errors: list(errors), warnings: list(warnings) });
  hr.sendJson(200, { errors: [], warnings: list(warnings) });
}
