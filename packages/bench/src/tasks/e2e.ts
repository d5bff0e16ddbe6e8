// The E2E NLG task (the LoRA paper's GPT-2 task): restaurant meaning representations and their
// human references, as in data/e2e/*.txt ("<mr>||<ref>" per line).
import { readFileSync } from "node:fs";

/** One meaning representation with all its references. */
export interface E2eGroup {
  mr: string;
  refs: string[];
}

/** Reads an E2E file, grouping references by meaning representation (in file order). */
export function loadE2e(file: string): E2eGroup[] {
  const groups = new Map<string, string[]>();
  for (const line of readFileSync(file, "utf8").split("\n")) {
    const [mr, ref] = line.split("||");
    if (!mr || !ref) continue;
    const key = mr.trim();
    groups.set(key, [...(groups.get(key) ?? []), ref.trim()]);
  }
  return [...groups].map(([mr, refs]) => ({ mr, refs }));
}

/** A deterministic split by meaning representation: every fifth is held out, unseen in training. */
export function splitE2e(groups: readonly E2eGroup[]): { train: E2eGroup[]; held: E2eGroup[] } {
  const train: E2eGroup[] = [];
  const held: E2eGroup[] = [];
  groups.forEach((g, i) => (i % 5 === 4 ? held : train).push(g));
  return { train, held };
}

/** What the model is given: "<mr> ||". */
export const e2ePrompt = (mr: string): string => `${mr} ||`;

/** What the model learns: "<mr> || <ref>". */
export const e2eExample = (mr: string, ref: string): string => `${mr} || ${ref}`;
