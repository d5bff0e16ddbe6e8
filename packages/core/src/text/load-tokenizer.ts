import { folderSource } from "../files/folder-source.js";
import { loadTokenizerFrom, type TextTokenizer } from "./tokenizer.js";

/** The model folder's tokenizer (loadTokenizerFrom on the folder), or undefined when it has none. */
export function loadTokenizer(modelDir: string, modelConfig: Record<string, unknown> = {}): Promise<TextTokenizer | undefined> {
  return loadTokenizerFrom(folderSource(modelDir), modelConfig);
}
