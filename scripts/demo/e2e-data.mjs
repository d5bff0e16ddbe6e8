// E2E (data/e2e/valid.txt): examples grouped by meaning representation, split by MR so the held-out
// set has MRs the adapter never saw in training.
import { readFileSync } from "node:fs";

export function loadE2e(file) {
  const groups = new Map();
  for (const line of readFileSync(file, "utf8").split("\n")) {
    const [mr, ref] = line.split("||");
    if (!mr || !ref) continue;
    const key = mr.trim();
    groups.set(key, [...(groups.get(key) ?? []), ref.trim()]);
  }
  return [...groups].map(([mr, refs]) => ({ mr, refs }));
}

/** Deterministic split: every fifth MR is held out. */
export function splitE2e(groups) {
  const train = [];
  const held = [];
  groups.forEach((g, i) => (i % 5 === 4 ? held : train).push(g));
  return { train, held };
}

/** The prompt and the full text the model learns: "<mr> || <ref>". */
export const prompt = (mr) => `${mr} ||`;
export const example = (mr, ref) => `${mr} || ${ref}`;
