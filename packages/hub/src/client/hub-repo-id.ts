/**
 * One part of a Hub repo id (namespace or name): letters, digits, "_", "-" and ".", starting and
 * ending with a letter, digit or "_" (huggingface_hub's `validate_repo_id`, ASCII only).
 */
const PART = "[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?";
const REPO_ID = new RegExp(`^(?:${PART}/)?${PART}$`);
const MAX_NAME = 96;

/**
 * True when `value` is a Hub repo id, "name" or "namespace/name", by the Hub's character rules
 * (as huggingface_hub validates it): each part of letters, digits, "_", "-", ".", not starting or
 * ending with "-" or ".", the name at most 96 characters, no "--" or "..", not ending in ".git".
 * Local paths ("/tmp/x", "./models/m", "../m", "C:\\m", "~/m") are never repo ids.
 */
export function isHubRepoId(value: string): boolean {
  if (!REPO_ID.test(value)) return false;
  if (value.includes("--") || value.includes("..") || value.endsWith(".git")) return false;
  return value.split("/").every((part) => part.length <= MAX_NAME);
}
