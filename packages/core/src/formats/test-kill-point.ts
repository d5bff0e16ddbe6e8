/**
 * Test only: the environment variable that makes a process kill itself at a named point of a write.
 * Its value is `<point>` or `<point>@<text>`; with `@<text>` only when the file being written
 * contains `<text>` in its path (e.g. `atomic-write:synced@/adapter_config.json`).
 *
 * The points:
 * - `atomic-write:partial`: a temporary file holds part of its content (after each write to it);
 * - `atomic-write:synced`: the temporary file is complete and fsynced, not yet renamed;
 * - `atomic-write:renamed`: the file was renamed into place;
 * - `atomic-dir:filled`: a folder write's temporary folder is complete, nothing moved yet;
 * - `atomic-dir:moved`: one file was moved into an existing folder, the next not yet;
 * - `atomic-dir:renamed`: the temporary folder was renamed into place as a new folder;
 * - `hub-download:partial`: a Hub blob's `.incomplete` file got a piece (after each one);
 *   `hub-download:synced`: what arrived is fsynced, not yet checked and renamed;
 *   `hub-download:renamed`: the blob is in place, its snapshot link not yet made (for all three
 *   the file named is the blob's final path);
 * - `hub-commit:applied`: the Hub server built a commit's file list, nothing written yet;
 * - `hub-server:renamed`: the Hub server renamed a file into place, its folder not yet fsynced.
 */
export const TEST_KILL_ENV = "LOWRANK_TEST_KILL_AT";

/**
 * Test only: SIGKILLs this process (no handler, no cleanup: as a crash or an OOM kill would) when
 * {@link TEST_KILL_ENV} names `point` (and, when it has an `@<text>` part, `file` contains that
 * text). Does nothing when the variable is unset, as it always is outside tests.
 * @param point one of the points listed at {@link TEST_KILL_ENV}.
 * @param file the file being written at that point.
 */
export function testKillPoint(point: string, file?: string): void {
  const wanted = process.env[TEST_KILL_ENV];
  if (!wanted) return;
  const at = wanted.indexOf("@");
  if ((at < 0 ? wanted : wanted.slice(0, at)) !== point) return;
  if (at >= 0 && !(file ?? "").replaceAll("\\", "/").includes(wanted.slice(at + 1))) return;
  process.kill(process.pid, "SIGKILL");
}
