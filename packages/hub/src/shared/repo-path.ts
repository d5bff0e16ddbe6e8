/**
 * Why `path` is not an acceptable file path inside a Hub repo, or undefined when it is: a non-empty
 * relative POSIX path of at most 1024 characters, without NUL, backslashes, a drive letter, empty,
 * "." or ".." segments, or a ".git" segment.
 *
 * The one rule for both sides: the client refuses such a name in a Hub's listing before writing
 * anything, and `@lowrank/hub-server` refuses it in a commit (400).
 *
 * @example
 * repoPathProblem("adapter_config.json"); // undefined
 * repoPathProblem("../evil"); // 'File path must not contain "." or ".." segments: "../evil"'
 */
export function repoPathProblem(path: unknown): string | undefined {
  if (typeof path !== "string" || path.length === 0) return "File path must be a non-empty string";
  const shown = JSON.stringify(path.length > 200 ? `${path.slice(0, 200)}…` : path);
  if (path.length > 1024) return `File path too long (max 1024 characters): ${shown}`;
  if (path.includes("\0")) return `File path must not contain NUL characters: ${shown}`;
  if (path.includes("\\")) return `File path must not contain backslashes: ${shown}`;
  if (path.startsWith("/")) return `File path must be relative, not absolute: ${shown}`;
  if (/^[A-Za-z]:/.test(path)) return `File path must not start with a drive letter: ${shown}`;
  for (const segment of path.split("/")) {
    if (segment === "") return `File path must not contain empty segments or a trailing slash: ${shown}`;
    if (segment === "." || segment === "..") return `File path must not contain "." or ".." segments: ${shown}`;
    if (segment.toLowerCase() === ".git") return `File path must not contain a ".git" segment: ${shown}`;
  }
  return undefined;
}
