import { describe, expect, test } from "vitest";
import { repoPathProblem } from "./repo-path.js";

describe("repoPathProblem", () => {
  test.each(["a.txt", "dir/sub/file.safetensors", ".gitattributes", "a..b"])("accepts %j", (ok) => {
    expect(repoPathProblem(ok)).toBeUndefined();
  });

  test.each([
    ["../evil", /"\." or "\.\." segments/],
    ["./a", /"\." or "\.\." segments/],
    ["/abs", /relative, not absolute/],
    ["a\\b", /backslashes/],
    ["a//b", /empty segments/],
    ["a/", /trailing slash/],
    ["", /non-empty string/],
    ["a\0b", /NUL/],
    ["C:/x", /drive letter/],
    [".git/hooks/x", /"\.git" segment/],
    ["sub/.GIT/x", /"\.git" segment/],
    ["x".repeat(1025), /too long/],
  ])("rejects %j, saying why", (bad, why) => {
    expect(repoPathProblem(bad)).toMatch(why);
  });

  test("a value that is not a string is a problem, not a crash", () => {
    for (const value of [undefined, null, 42, {}]) expect(repoPathProblem(value)).toBe("File path must be a non-empty string");
  });
});
