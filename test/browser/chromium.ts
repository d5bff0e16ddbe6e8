import { existsSync } from "node:fs";
import puppeteer, { type Browser, type Page } from "puppeteer-core";

/** Where Chromium is: $LOWRANK_CHROMIUM, else Debian's /usr/bin/chromium (`apt-get install -y chromium`). */
export function chromiumPath(): string {
  const path = process.env.LOWRANK_CHROMIUM ?? "/usr/bin/chromium";
  if (!existsSync(path)) throw new Error(`no browser at ${path}: install Debian's chromium (apt-get install -y chromium) or set LOWRANK_CHROMIUM`);
  return path;
}

/**
 * Headless Chromium (no sandbox: CI runs as root). Fails, never skips, when it cannot start. With
 * `webgpu`, WebGPU on SwiftShader (a CPU implementation of Vulkan), so the WebGPU path runs without a GPU.
 */
export function launchChromium(options: { webgpu?: boolean } = {}): Promise<Browser> {
  const webgpu = options.webgpu ? ["--enable-unsafe-webgpu", "--enable-features=Vulkan", "--use-angle=swiftshader", "--use-webgpu-adapter=swiftshader"] : [];
  return puppeteer.launch({ executablePath: chromiumPath(), headless: true, args: ["--no-sandbox", "--disable-dev-shm-usage", ...webgpu] });
}

/**
 * What a page reported: uncaught errors, and console errors other than failed loads (HTTP errors the
 * page reports itself, like an absent tokenizer.json) and ONNX Runtime's log lines.
 */
export function pageProblems(page: Page): string[] {
  const problems: string[] = [];
  page.on("pageerror", (error) => problems.push(`pageerror: ${(error as Error).message}`));
  page.on("console", (message) => {
    const text = message.text();
    if (message.type() === "error" && !/^Failed to load resource: the server responded with a status of \d+|\[W:onnxruntime/.test(text))
      problems.push(`console: ${text}`);
  });
  return problems;
}

/** Waits until the page wrote its new token ids (#result) or an error (#error); returns both. */
export async function pageOutcome(page: Page, timeout = 60_000): Promise<{ result: string; error: string }> {
  await page.waitForFunction(() => document.querySelector("#result")?.textContent || document.querySelector("#error")?.textContent, { timeout });
  return {
    result: (await page.$eval("#result", (e) => e.textContent)) ?? "",
    error: (await page.$eval("#error", (e) => e.textContent)) ?? "",
  };
}
