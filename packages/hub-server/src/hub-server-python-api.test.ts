// Endpoints huggingface_hub (Python) calls besides uploads and downloads: /api/validate-yaml before a
// commit with README.md, tags (create_tag, delete_tag, list_repo_refs, downloads at a tag) and repo
// listings (list_models, list_datasets), sent as plain HTTP the way huggingface_hub sends them.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { listModels } from "@huggingface/hub";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { hubAuthFetch } from "@lowrank/hub";
import { startHubServer, type HubServer } from "./start-hub-server.js";

const token = "operator-secret";
const auth = { Authorization: `Bearer ${token}` };
const ndjson = (lines: unknown[]) => lines.map((l) => JSON.stringify(l)).join("\n");

let dir: string;
let server: HubServer;
let url: string;
const api = (p: string, init: RequestInit = {}) => fetch(`${url}${p}`, { ...init, headers: { ...auth, ...(init.headers as Record<string, string>) } });
const anonymous = (p: string, init: RequestInit = {}) => fetch(`${url}${p}`, init);
const json = (body: unknown) => ({ method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
const createRepo = async (name: string, organization: string | undefined, options: { private?: boolean; type?: string } = {}) => {
  const res = await api("/api/repos/create", json({ name, organization, private: options.private ?? false, type: options.type ?? "model" }));
  expect(res.status, await res.clone().text()).toBe(200);
};
const commitFile = async (repo: string, file: string, content: string, summary: string, type = "model") => {
  const res = await api(`/api/${type}s/${repo}/commit/main`, {
    method: "POST",
    headers: { "Content-Type": "application/x-ndjson" },
    body: ndjson([
      { key: "header", value: { summary } },
      { key: "file", value: { path: file, content: Buffer.from(content).toString("base64"), encoding: "base64" } },
    ]),
  });
  expect(res.status, await res.clone().text()).toBe(200);
  return ((await res.json()) as { commitOid: string }).commitOid;
};

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "lowrank-hub-python-api-"));
  server = await startHubServer({ dir, tokens: [token] });
  url = server.url;
});
afterAll(async () => {
  await server?.close();
  await rm(dir, { recursive: true, force: true });
});

describe("POST /api/validate-yaml (before every commit with a README.md)", () => {
  const validate = (content: unknown, repoType: unknown = "model", send = api) => send("/api/validate-yaml", json({ content, repoType }));

  it("valid metadata: 200 with empty errors and warnings", async () => {
    const card = "---\nlibrary_name: peft\nbase_model: gpt2\ntags:\n- peft\n- lora\n---\n\n# org/adapter\n";
    const res = await validate(card);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ errors: [], warnings: [] });
    // No token needed (huggingface.co answers anonymous calls too); dataset and space cards as well.
    const anon = await validate("---\nlicense: mit\n---\n", "dataset", anonymous);
    expect(anon.status).toBe(200);
    expect((await validate("---\ntitle: demo\nsdk: static\n---\n", "space")).status).toBe(200);
  });

  it("a card without metadata: 200 with a warning (as the Hub answers; huggingface_hub shows it and goes on)", async () => {
    const res = await validate("# Just a title\n");
    expect(res.status).toBe(200);
    const body = (await res.json()) as { errors: unknown[]; warnings: Array<{ message: string }> };
    expect(body.errors).toEqual([]);
    expect(body.warnings).toEqual([{ message: expect.stringMatching(/^Empty or missing yaml metadata in repo card/) }]);
  });

  it.each([
    ["an unclosed list", "---\nlicense: mit\ntags: [peft, lora\n---\n", /line 3: the flow collection opened with "\[" is not closed/],
    ["a bad indentation", "---\nlicense: mit\n  tags: x\n---\n", /line 3: .*mapping values are not allowed here/],
    ["a tab as indentation", "---\ntags:\n\t- peft\n---\n", /line 3: a tab is used for indentation/],
    ["an unclosed quote", '---\nlicense: "mit\nbase_model: gpt2\n---\n', /line 2: a quoted string is not closed/],
    ["a duplicated key", "---\nlicense: mit\nlicense: apache-2.0\n---\n", /line 3: the key license appears twice/],
    ["a list instead of a mapping", "---\n- peft\n- lora\n---\n", /must be a mapping of keys to values/],
  ])("invalid metadata (%s): 400 with `error` and `errors: [{ message }]`", async (_what, card, pattern) => {
    const res = await validate(card);
    expect(res.status).toBe(400);
    const body = (await res.json()) as { error: string; errors: Array<{ message: string }>; warnings: unknown[] };
    expect(body.error).toMatch(pattern);
    expect(body.errors).toEqual([{ message: body.error }]);
    expect(body.warnings).toEqual([]);
    expect(res.headers.get("x-error-message")).toMatch(pattern);
  });

  it("the older form-encoded request (RepoCard.validate) is read too", async () => {
    const res = await api("/api/validate-yaml", {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded", Accept: "text/plain" },
      body: new URLSearchParams({ repoType: "model", content: "---\ntags: [a\n---\n" }).toString(),
    });
    expect(res.status).toBe(400);
  });

  it("bad requests: no content, an unknown repoType, not JSON, a wrong token, GET", async () => {
    expect((await api("/api/validate-yaml", json({ repoType: "model" }))).status).toBe(400);
    expect((await validate("---\na: b\n---\n", "bucket")).status).toBe(400);
    expect((await api("/api/validate-yaml", { method: "POST", body: "{nope" })).status).toBe(400);
    expect(
      (await anonymous("/api/validate-yaml", { ...json({ content: "" }), headers: { Authorization: "Bearer wrong", "Content-Type": "application/json" } }))
        .status,
    ).toBe(401);
    expect((await api("/api/validate-yaml")).status).toBe(405);
  });
});

describe("tags", () => {
  let first: string;
  let second: string;
  beforeAll(async () => {
    await createRepo("tagged", "org");
    first = await commitFile("org/tagged", "notes.txt", "version one", "v1");
    second = await commitFile("org/tagged", "notes.txt", "version two", "v2");
  });

  it("POST /api/models/{repo}/tag/{revision} tags that revision; refs lists it like a branch", async () => {
    const created = await api(`/api/models/org/tagged/tag/${first}`, json({ tag: "v1.0", message: "first release" }));
    expect(created.status, await created.clone().text()).toBe(200);
    expect((await api("/api/models/org/tagged/tag/main", json({ tag: "latest" }))).status).toBe(200);
    const refs = (await (await api("/api/models/org/tagged/refs")).json()) as Record<string, unknown>;
    expect(refs).toEqual({
      branches: [{ name: "main", ref: "refs/heads/main", targetCommit: second }],
      tags: [
        { name: "latest", ref: "refs/tags/latest", targetCommit: second },
        { name: "v1.0", ref: "refs/tags/v1.0", targetCommit: first },
      ],
      converts: [],
    });
  });

  it("a tag resolves like a branch: resolve/, revision info, tree, and refs/tags/<name>", async () => {
    const file = await anonymous("/org/tagged/resolve/v1.0/notes.txt");
    expect(file.status).toBe(200);
    expect(await file.text()).toBe("version one");
    expect(file.headers.get("x-repo-commit")).toBe(first);
    expect(await (await anonymous("/org/tagged/resolve/refs%2Ftags%2Fv1.0/notes.txt")).text()).toBe("version one");
    const info = (await (await anonymous("/api/models/org/tagged/revision/v1.0")).json()) as { sha: string };
    expect(info.sha).toBe(first);
    const tree = (await (await anonymous("/api/models/org/tagged/tree/v1.0")).json()) as Array<{ path: string }>;
    expect(tree.map((e) => e.path)).toEqual([".gitattributes", "notes.txt"]);
    // The tag stays where it was when main moves on.
    await commitFile("org/tagged", "notes.txt", "version three", "v3");
    expect(await (await anonymous("/org/tagged/resolve/v1.0/notes.txt")).text()).toBe("version one");
    expect(await (await anonymous("/org/tagged/resolve/main/notes.txt")).text()).toBe("version three");
  });

  it("creating an existing tag is a 409; a tag named like a branch too", async () => {
    const again = await api("/api/models/org/tagged/tag/main", json({ tag: "v1.0" }));
    expect(again.status).toBe(409);
    expect(((await again.json()) as { error: string }).error).toMatch(/Tag already exists: v1\.0/);
    expect((await api("/api/models/org/tagged/tag/main", json({ tag: "main" }))).status).toBe(409);
  });

  it("bad requests: unknown revision (404 RevisionNotFound), bad tag names, no token, commits to a tag", async () => {
    const unknown = await api("/api/models/org/tagged/tag/no-such-branch", json({ tag: "x1" }));
    expect(unknown.status).toBe(404);
    expect(unknown.headers.get("x-error-code")).toBe("RevisionNotFound");
    for (const tag of ["", "a..b", "-x", "bad name", "refs/tags/x", "a".repeat(40).replace(/a/g, "f")]) {
      expect((await api("/api/models/org/tagged/tag/main", json({ tag }))).status, tag).toBe(400);
    }
    expect((await api("/api/models/org/tagged/tag/main", json({}))).status).toBe(400);
    expect((await anonymous("/api/models/org/tagged/tag/main", json({ tag: "anon" }))).status).toBe(401);
    const commit = await api("/api/models/org/tagged/commit/v1.0", {
      method: "POST",
      headers: { "Content-Type": "application/x-ndjson" },
      body: ndjson([
        { key: "header", value: { summary: "on a tag" } },
        { key: "file", value: { path: "x.txt", content: "eA==", encoding: "base64" } },
      ]),
    });
    expect(commit.status).toBe(400);
  });

  it("DELETE /api/models/{repo}/tag/{tag} removes it; deleting it again is a 404 RevisionNotFound", async () => {
    expect((await anonymous("/api/models/org/tagged/tag/latest", { method: "DELETE" })).status).toBe(401);
    expect((await api("/api/models/org/tagged/tag/latest", { method: "DELETE" })).status).toBe(200);
    const again = await api("/api/models/org/tagged/tag/latest", { method: "DELETE" });
    expect(again.status).toBe(404);
    expect(again.headers.get("x-error-code")).toBe("RevisionNotFound");
    expect((await anonymous("/org/tagged/resolve/latest/notes.txt")).status).toBe(404);
    const refs = (await (await api("/api/models/org/tagged/refs")).json()) as { tags: Array<{ name: string }> };
    expect(refs.tags.map((t) => t.name)).toEqual(["v1.0"]);
  });

  it("tags with a slash (sent encoded, as huggingface_hub quotes them), and on dataset repos", async () => {
    expect((await api("/api/models/org/tagged/tag/main", json({ tag: "release/2024" }))).status).toBe(200);
    expect(await (await anonymous("/org/tagged/resolve/release%2F2024/notes.txt")).text()).toBe("version three");
    expect((await api("/api/models/org/tagged/tag/release%2F2024", { method: "DELETE" })).status).toBe(200);
    await createRepo("tagged-data", "org", { type: "dataset" });
    const oid = await commitFile("org/tagged-data", "train.csv", "a,b\n1,2\n", "data", "dataset");
    expect((await api("/api/datasets/org/tagged-data/tag/main", json({ tag: "v1" }))).status).toBe(200);
    const refs = (await (await api("/api/datasets/org/tagged-data/refs")).json()) as { tags: unknown[] };
    expect(refs.tags).toEqual([{ name: "v1", ref: "refs/tags/v1", targetCommit: oid }]);
    expect(await (await anonymous("/datasets/org/tagged-data/resolve/v1/train.csv")).text()).toBe("a,b\n1,2\n");
  });
});

describe("GET /api/models and /api/datasets (list_models, list_datasets)", () => {
  type Entry = {
    _id: string;
    id: string;
    modelId?: string;
    author?: string;
    private: boolean;
    sha: string;
    lastModified: string;
    createdAt: string;
    tags: string[];
    downloads: number;
    likes: number;
  };
  const list = async (query: string, send = api) => {
    const res = await send(`/api/models${query}`);
    expect(res.status, await res.clone().text()).toBe(200);
    return { entries: (await res.json()) as Entry[], link: res.headers.get("link") };
  };
  beforeAll(async () => {
    await createRepo("alpha-lora", "listing");
    await createRepo("beta-lora", "listing");
    await createRepo("gamma-dora", "listing");
    await createRepo("secret-lora", "listing", { private: true });
    await createRepo("other-lora", "someone");
    await createRepo("solo", undefined);
    await createRepo("listed-data", "listing", { type: "dataset" });
    await commitFile("listing/alpha-lora", "README.md", "# alpha", "touch alpha last");
  });

  it("entries have the fields huggingface_hub's ModelInfo reads", async () => {
    const { entries } = await list("?author=listing");
    const alpha = entries.find((e) => e.id === "listing/alpha-lora")!;
    expect(alpha).toEqual({
      _id: expect.stringMatching(/^[0-9a-f]{24}$/),
      id: "listing/alpha-lora",
      modelId: "listing/alpha-lora",
      author: "listing",
      private: false,
      gated: false,
      disabled: false,
      sha: expect.stringMatching(/^[0-9a-f]{40}$/),
      lastModified: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/),
      createdAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
      tags: [],
      downloads: 0,
      likes: 0,
      trendingScore: 0,
    });
    const info = (await (await api("/api/models/listing/alpha-lora")).json()) as { sha: string; lastModified: string };
    expect(alpha.sha).toBe(info.sha);
    expect(alpha.lastModified).toBe(info.lastModified);
  });

  it("private repos are listed only to callers with a valid token", async () => {
    const withToken = (await list("?author=listing")).entries.map((e) => e.id);
    expect(withToken).toEqual(["listing/alpha-lora", "listing/beta-lora", "listing/gamma-dora", "listing/secret-lora"]);
    expect((await list("?author=listing")).entries.find((e) => e.id === "listing/secret-lora")?.private).toBe(true);
    const anon = (await list("?author=listing", anonymous)).entries.map((e) => e.id);
    expect(anon).toEqual(["listing/alpha-lora", "listing/beta-lora", "listing/gamma-dora"]);
    expect((await list("?search=secret", anonymous)).entries).toEqual([]);
    const wrong = await anonymous("/api/models", { headers: { Authorization: "Bearer not-a-token" } });
    expect(wrong.status).toBe(401);
  });

  it("author, search (case-insensitive, every term) and the repos of other types stay apart", async () => {
    expect((await list("?search=LORA")).entries.map((e) => e.id)).toEqual([
      "listing/alpha-lora",
      "listing/beta-lora",
      "listing/secret-lora",
      "someone/other-lora",
    ]);
    expect((await list("?search=lora&author=someone")).entries.map((e) => e.id)).toEqual(["someone/other-lora"]);
    expect((await list("?search=listing&search=dora")).entries.map((e) => e.id)).toEqual(["listing/gamma-dora"]);
    expect((await list("?author=nobody")).entries).toEqual([]);
    // Tags are not read from cards yet (tags: [] everywhere): a tag filter matches nothing rather than everything.
    expect((await list("?author=listing&filter=peft")).entries).toEqual([]);
    const all = (await list("")).entries.map((e) => e.id);
    expect(all).toContain("solo");
    expect(all).not.toContain("listing/listed-data");
    expect((await list("?search=solo")).entries[0]).not.toHaveProperty("author");
    const datasets = (await (await api("/api/datasets?author=listing")).json()) as Entry[];
    expect(datasets.map((e) => e.id)).toEqual(["listing/listed-data"]);
    expect(datasets[0]).not.toHaveProperty("modelId");
  });

  it("sort (descending by default, as huggingface_hub asks) and direction", async () => {
    const byModified = (await list("?author=listing&sort=lastModified")).entries.map((e) => e.id);
    expect(byModified[0]).toBe("listing/alpha-lora");
    const ascending = (await list("?author=listing&sort=createdAt&direction=1")).entries.map((e) => e.id);
    expect(ascending).toEqual(["listing/alpha-lora", "listing/beta-lora", "listing/gamma-dora", "listing/secret-lora"]);
    const descending = (await list("?author=listing&sort=createdAt&direction=-1")).entries.map((e) => e.id);
    expect(descending).toEqual([...ascending].reverse());
    expect((await list("?author=listing&sort=downloads")).entries).toHaveLength(4);
    expect((await api("/api/models?sort=stars")).status).toBe(400);
  });

  it("@huggingface/hub's listModels reads the listing (with the operator's token through hubAuthFetch)", async () => {
    const names: string[] = [];
    for await (const model of listModels({ hubUrl: url, search: { owner: "listing" }, fetch: hubAuthFetch({ hubUrl: url, token }) })) {
      names.push(model.name);
      expect(model.updatedAt.getTime()).toBeGreaterThan(0);
    }
    expect(names.sort()).toEqual(["listing/alpha-lora", "listing/beta-lora", "listing/gamma-dora", "listing/secret-lora"]);
  });

  it('limit pages with a Link rel="next" header until the last page', async () => {
    const seen: string[] = [];
    let next: string | undefined = `${url}/api/models?author=listing&limit=3`;
    let pages = 0;
    while (next) {
      const res: Response = await fetch(next, { headers: auth });
      expect(res.status).toBe(200);
      const page = (await res.json()) as Entry[];
      expect(page.length).toBeLessThanOrEqual(3);
      seen.push(...page.map((e) => e.id));
      next = /<([^>]+)>;\s*rel="next"/.exec(res.headers.get("link") ?? "")?.[1];
      pages += 1;
    }
    expect(pages).toBe(2);
    expect(seen).toEqual(["listing/alpha-lora", "listing/beta-lora", "listing/gamma-dora", "listing/secret-lora"]);
    expect((await list("?author=listing&limit=4")).link).toBeNull();
    expect((await api("/api/models?limit=0")).status).toBe(400);
    expect((await api("/api/models?cursor=%%%")).status).toBe(400);
  });
});
