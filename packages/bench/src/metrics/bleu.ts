/**
 * Corpus BLEU (Papineni et al., 2002), as multi-bleu.perl and NLTK's corpus_bleu compute it: n-gram
 * precisions up to 4 clipped by the largest count in any reference, summed over the corpus,
 * geometric mean, and a brevity penalty against the reference length closest to each hypothesis
 * (the shorter on ties). Texts are compared as whitespace-separated tokens (E2E's references are
 * already tokenised that way). Returns a value from 0 to 1.
 */
export function corpusBleu(hypotheses: readonly string[], references: readonly (readonly string[])[], maxOrder = 4): number {
  if (hypotheses.length !== references.length) throw new Error(`corpusBleu: ${hypotheses.length} hypotheses but ${references.length} reference sets`);
  const matches = new Array<number>(maxOrder).fill(0);
  const totals = new Array<number>(maxOrder).fill(0);
  let hypLength = 0;
  let refLength = 0;
  hypotheses.forEach((hypothesis, i) => {
    const hyp = tokens(hypothesis);
    const refs = references[i]!.map(tokens);
    hypLength += hyp.length;
    refLength += closestLength(
      hyp.length,
      refs.map((r) => r.length),
    );
    for (let n = 1; n <= maxOrder; n++) {
      const counts = ngrams(hyp, n);
      const maxRef = new Map<string, number>();
      for (const ref of refs) for (const [gram, c] of ngrams(ref, n)) maxRef.set(gram, Math.max(maxRef.get(gram) ?? 0, c));
      for (const [gram, c] of counts) matches[n - 1]! += Math.min(c, maxRef.get(gram) ?? 0);
      totals[n - 1]! += Math.max(0, hyp.length - n + 1);
    }
  });
  if (matches.some((m) => m === 0)) return 0;
  const logPrecision = matches.reduce((s, m, k) => s + Math.log(m / totals[k]!), 0) / maxOrder;
  const brevity = hypLength > refLength ? 1 : hypLength === 0 ? 0 : Math.exp(1 - refLength / hypLength);
  return brevity * Math.exp(logPrecision);
}

function tokens(text: string): string[] {
  return text.trim().split(/\s+/).filter(Boolean);
}

function closestLength(length: number, candidates: number[]): number {
  return candidates.reduce(
    (best, c) => (Math.abs(c - length) < Math.abs(best - length) || (Math.abs(c - length) === Math.abs(best - length) && c < best) ? c : best),
    candidates[0] ?? 0,
  );
}

function ngrams(words: readonly string[], n: number): Map<string, number> {
  const counts = new Map<string, number>();
  for (let i = 0; i + n <= words.length; i++) {
    const gram = words.slice(i, i + n).join("\u0000");
    counts.set(gram, (counts.get(gram) ?? 0) + 1);
  }
  return counts;
}
