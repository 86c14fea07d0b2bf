/**
 * Test helper: asserts that a deltaship command failed the way users must see
 * failures (exit 1, one line on stderr, no stack trace, nothing on stdout) and
 * left the repository exactly as it was (same images, fsck clean, tmp/ empty).
 */
import assert from "node:assert/strict";
import { type CliResult, runCli } from "./cli.ts";

/** Runs `deltaship --repo REPO ARGS...` with `env`, expecting a clean failure matching `message`. */
export async function expectCleanFailure(
  repo: string,
  args: string[],
  message: RegExp,
  env: Record<string, string> = {},
): Promise<CliResult> {
  const before = (await runCli(["--repo", repo, "--json", "images"], env)).stdout;
  const r = await runCli(["--repo", repo, ...args], env);
  assert.equal(r.code, 1, `${args.join(" ")}: expected exit 1, got ${r.code}; stderr: ${r.stderr}`);
  assert.match(r.stderr, message);
  assert.equal(r.stderr.trim().split("\n").length, 1, `one line: ${r.stderr}`);
  assert.doesNotMatch(r.stderr, /^\s+at /m);
  assert.doesNotMatch(r.stderr, /internal error/);
  assert.equal(r.stdout, "");
  assert.equal((await runCli(["--repo", repo, "--json", "images"], env)).stdout, before);
  const fsck = await runCli(["--repo", repo, "fsck"], env);
  assert.equal(fsck.code, 0, fsck.stdout + fsck.stderr);
  assert.deepEqual([...Deno.readDirSync(`${repo}/tmp`)], []);
  return r;
}
