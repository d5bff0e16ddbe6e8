// The example page: a base ONNX model and PEFT adapters, all run in the browser by lowrank's browser
// entries on onnxruntime-web. `lowrank web` serves it with /lowrank.json naming the model and
// adapters; files dropped on the page or a Hub repository add more. For automation the page takes
// ?adapter=NAME&prompt_ids=1,2,3&max_new_tokens=N, generates greedily and writes the new token ids as
// a JSON array into <pre id="result"> (an error goes to <pre id="error">).
import {
  hubSource,
  fileListSource,
  loadTokenizerFrom,
  readAdapterFrom,
  readJsonFrom,
  stopTokensOf,
  urlSource,
  type FileSource,
  type LoraAdapter,
  type TextTokenizer,
} from "@lowrank/core";
import {
  configureWebRuntime,
  generateWithKvCache,
  generateWithoutCache,
  kvLayoutOf,
  OnnxLoraSession,
  type ExecutionProvider,
  type KvLayout,
} from "@lowrank/backend-onnx";

/** What `lowrank web` serves at /lowrank.json. */
interface Manifest {
  model?: { name: string; url: string; files: string };
  adapters?: Record<string, string>;
  /** The Hub repositories are read from (default https://huggingface.co). */
  hub?: string;
}

interface Model {
  name: string;
  bytes: Uint8Array;
  tokenizer?: TextTokenizer;
  stopTokens?: number[];
}

const element = <T extends HTMLElement>(id: string): T => document.getElementById(id) as T;
const status = (text: string) => (element("status").textContent = text);
const showError = (error: unknown) => {
  element("error").textContent = error instanceof Error ? error.message : String(error);
  status("Failed.");
};

let model: Model | undefined;
const adapters = new Map<string, LoraAdapter>();
/** Adapters that could not be read, with why (shown when one is picked). */
const adapterErrors = new Map<string, string>();
let session: OnnxLoraSession | undefined;
let layout: KvLayout | undefined;
let provider: ExecutionProvider = "cpu";
let hubEndpoint: string | undefined;

async function fetchBytes(url: string): Promise<Uint8Array> {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  return new Uint8Array(await response.arrayBuffer());
}

/** A model's bytes, plus its tokenizer and stop tokens when the files beside it are given. */
async function loadModel(name: string, bytes: Uint8Array, files?: FileSource): Promise<void> {
  const config = files ? await readJsonFrom(files, "config.json") : undefined;
  const tokenizer = files ? await loadTokenizerFrom(files, config ?? {}) : undefined;
  const generation = files ? await readJsonFrom(files, "generation_config.json") : undefined;
  model = { name, bytes, tokenizer, stopTokens: stopTokensOf([generation, config], tokenizer?.eosTokenId) };
  element("model").textContent = `${name} (${(bytes.byteLength / 1e6).toFixed(1)} MB${tokenizer ? ", with its tokenizer" : ""})`;
}

/** One session for the model and every adapter read so far: switching among them never rebuilds it. */
async function openSession(): Promise<void> {
  if (!model) return;
  await session?.release();
  session = undefined;
  status(`Loading ${model.name} on onnxruntime-web (${provider})…`);
  const { name, bytes } = model;
  const create = (chosen: Map<string, LoraAdapter>) =>
    OnnxLoraSession.create(bytes, { label: name, adapters: Object.fromEntries(chosen), executionProvider: provider, reloadModel: async () => bytes });
  try {
    session = await create(adapters);
  } catch (error) {
    if (adapters.size === 0) throw error;
    // Some adapter does not fit this model: find which (each tried alone), set them aside, keep the others.
    for (const [adapterName, adapter] of adapters) {
      try {
        await (await create(new Map([[adapterName, adapter]]))).release();
      } catch (alone) {
        adapters.delete(adapterName);
        adapterErrors.set(adapterName, (alone as Error).message);
      }
    }
    listAdapters();
    session = await create(adapters);
  }
  // A decoder exported without a key/value cache runs the whole sequence for each new token.
  layout = kvLayoutOf(session.session, model.name);
  element<HTMLButtonElement>("generate").disabled = false;
  status(`Ready: ${model.name}, ${adapters.size} adapter(s), ${session.provider}${layout ? "" : ", no key/value cache"}.`);
}

function listAdapters(): void {
  const select = element<HTMLSelectElement>("adapter");
  const current = select.value;
  select.replaceChildren(new Option("base model (no adapter)", ""));
  const list = element("adapters");
  list.replaceChildren();
  for (const name of [...adapters.keys(), ...adapterErrors.keys()]) {
    select.add(new Option(name, name));
    const item = document.createElement("li");
    const adapter = adapters.get(name);
    item.textContent = adapter
      ? `${name}: r=${adapter.config.r}, alpha ${adapter.config.lora_alpha}, ${adapter.tensors.size} tensors`
      : `${name}: cannot be used (${adapterErrors.get(name)})`;
    list.append(item);
  }
  select.value = current;
}

async function addAdapter(name: string, source: FileSource): Promise<void> {
  try {
    adapters.set(name, await readAdapterFrom(source));
    adapterErrors.delete(name);
  } catch (error) {
    adapters.delete(name);
    adapterErrors.set(name, (error as Error).message);
  }
}

/** The prompt box as token ids: "1,2,3", or text through the model's tokenizer. */
function promptIds(text: string): number[] {
  if (/^\s*\d+(\s*,\s*\d+)*\s*$/.test(text)) return text.split(",").map((x) => Number(x.trim()));
  if (!model?.tokenizer) throw new Error("this model came without a tokenizer.json: give the prompt as token ids (1,2,3)");
  return model.tokenizer.encode(text);
}

async function generate(adapterName: string, ids: number[], maxNewTokens: number): Promise<void> {
  element("error").textContent = "";
  element("result").textContent = "";
  if (adapterErrors.has(adapterName)) throw new Error(`adapter ${adapterName}: ${adapterErrors.get(adapterName)}`);
  if (adapterName !== "" && !adapters.has(adapterName))
    throw new Error(`no adapter named "${adapterName}" (loaded: ${[...adapters.keys()].join(", ") || "none"})`);
  if (!session || !model) throw new Error("no model loaded");
  status(`Generating with ${adapterName || "the base model"}…`);
  const started = performance.now();
  const decode = { maxNewTokens, eosTokenId: model.stopTokens, adapter: adapterName || null };
  const produced = layout ? await generateWithKvCache(session, layout, ids, decode) : await generateWithoutCache(session, ids, decode);
  const seconds = (performance.now() - started) / 1000;
  element("speed").textContent = `${produced.length} tokens in ${seconds.toFixed(2)} s (${(produced.length / seconds).toFixed(1)} tokens/s)`;
  element("output").textContent = model.tokenizer ? model.tokenizer.decode(produced) : "";
  element("result").textContent = JSON.stringify(produced);
  status(`Done: ${adapterName || "base model"} on ${session.provider}.`);
}

async function start(): Promise<void> {
  const runtime = await configureWebRuntime({ wasmPaths: new URL("ort/", location.href).href });
  provider = runtime.webgpu && new URLSearchParams(location.search).get("webgpu") === "1" ? "webgpu" : "cpu";
  element("runtime").textContent = `onnxruntime-web: ${runtime.threads} thread(s)${runtime.webgpu ? ", WebGPU available (add ?webgpu=1)" : ""}.`;
  const response = await fetch("lowrank.json");
  const manifest: Manifest = response.ok ? await response.json() : {};
  hubEndpoint = manifest.hub;
  for (const [name, url] of Object.entries(manifest.adapters ?? {})) await addAdapter(name, urlSource(new URL(url, location.href)));
  listAdapters();
  if (manifest.model) {
    status(`Fetching ${manifest.model.name}…`);
    const files = urlSource(new URL(manifest.model.files, location.href));
    await loadModel(manifest.model.name, await fetchBytes(manifest.model.url), files);
    await openSession();
  } else {
    status("Pick an .onnx model file to start.");
  }
  const params = new URLSearchParams(location.search);
  const ids = params.get("prompt_ids");
  if (ids !== null) {
    const adapterName = params.get("adapter") ?? "";
    element<HTMLSelectElement>("adapter").value = adapterName;
    element<HTMLTextAreaElement>("prompt").value = ids;
    element<HTMLInputElement>("max-new-tokens").value = params.get("max_new_tokens") ?? "32";
    await generate(adapterName, promptIds(ids), Number(params.get("max_new_tokens") ?? 32));
  }
}

const guarded = (work: () => Promise<void>) => () => work().catch(showError);

element("generate").addEventListener(
  "click",
  guarded(() =>
    generate(
      element<HTMLSelectElement>("adapter").value,
      promptIds(element<HTMLTextAreaElement>("prompt").value),
      Number(element<HTMLInputElement>("max-new-tokens").value),
    ),
  ),
);
element("model-file").addEventListener(
  "change",
  guarded(async () => {
    // The .onnx file, and the JSON files that came with it (config.json, generation_config.json, tokenizer.json).
    const files = Array.from(element<HTMLInputElement>("model-file").files ?? []);
    const onnx = files.find((f) => f.name.endsWith(".onnx"));
    if (!onnx) throw new Error("pick an .onnx file (with its config.json, generation_config.json and tokenizer.json, if any)");
    const sideFiles = files.filter((f) => f !== onnx);
    await loadModel(onnx.name, new Uint8Array(await onnx.arrayBuffer()), sideFiles.length > 0 ? fileListSource(sideFiles, "model files") : undefined);
    await openSession();
  }),
);
for (const form of ["adapter-form", "model-form", "token-form"]) element(form).addEventListener("submit", (event) => event.preventDefault());
const hubToken = () => element<HTMLInputElement>("hub-token").value.trim() || undefined;
element("load-model").addEventListener(
  "click",
  guarded(async () => {
    // An Optimum-style repository: the .onnx under onnx/, config.json and the tokenizer at the top.
    const repo = element<HTMLInputElement>("model-repo").value.trim();
    const file = element<HTMLInputElement>("model-path").value.trim();
    if (!repo || !file) throw new Error("name a Hub repository and the .onnx file in it");
    const source = hubSource(repo, { token: hubToken(), endpoint: hubEndpoint });
    status(`Fetching ${repo}/${file}…`);
    const bytes = await source.read(file);
    if (!bytes) throw new Error(`${source.label}: has no ${file}`);
    await loadModel(`${repo}/${file}`, bytes, source);
    await openSession();
  }),
);
element("add-adapter").addEventListener(
  "click",
  guarded(async () => {
    const files = element<HTMLInputElement>("adapter-files").files;
    const repo = element<HTMLInputElement>("hub-repo").value.trim();
    const source =
      files && files.length > 0 ? fileListSource(Array.from(files)) : repo ? hubSource(repo, { token: hubToken(), endpoint: hubEndpoint }) : undefined;
    if (!source) throw new Error("pick an adapter's files or name a Hub repository");
    const name = element<HTMLInputElement>("adapter-name").value.trim() || `adapter${adapters.size + adapterErrors.size + 1}`;
    await addAdapter(name, source);
    listAdapters();
    if (adapterErrors.has(name)) throw new Error(`adapter ${name}: ${adapterErrors.get(name)}`);
    await openSession();
  }),
);
guarded(start)();
