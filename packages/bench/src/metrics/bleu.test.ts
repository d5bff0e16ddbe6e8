import { describe, expect, test } from "vitest";
import { corpusBleu } from "./bleu.js";

describe("corpus BLEU", () => {
  test("NLTK's documented example gives NLTK's value", () => {
    const hyp1 = "It is a guide to action which ensures that the military always obeys the commands of the party";
    const ref1a = "It is a guide to action that ensures that the military will forever heed Party commands";
    const ref1b = "It is the guiding principle which guarantees the military forces always being under the command of the Party";
    const ref1c = "It is the practical guide for the army always to heed the directions of the party";
    const hyp2 = "he read the book because he was interested in world history";
    const ref2a = "he was interested in world history because he read the book";
    expect(corpusBleu([hyp1, hyp2], [[ref1a, ref1b, ref1c], [ref2a]])).toBeCloseTo(0.5920778868801042, 12);
  });

  test("a hypothesis equal to a reference scores 1; no shared 4-gram scores 0", () => {
    expect(corpusBleu(["the cat sat on the mat ."], [["a dog .", "the cat sat on the mat ."]])).toBe(1);
    expect(corpusBleu(["completely different words here"], [["the cat sat on the mat"]])).toBe(0);
  });

  test("short hypotheses pay the brevity penalty", () => {
    const full = corpusBleu(["the cat sat on the mat today"], [["the cat sat on the mat today"]]);
    const short = corpusBleu(["the cat sat on the"], [["the cat sat on the mat today"]]);
    expect(full).toBe(1);
    expect(short).toBeCloseTo(Math.exp(1 - 7 / 5), 12);
  });

  test("mismatched lengths are an error", () => {
    expect(() => corpusBleu(["a"], [])).toThrow(/1 hypotheses but 0 reference sets/);
  });
});
