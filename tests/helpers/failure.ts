/**
 * Test helper: asserts that a deltaship command failed the way users must see
 * failures (exit 1, one line on stderr, no stack trace, nothing on stdout) and
 * left the repository exactly as it was (same images, fsck clean, tmp/ empty).
 */
import assert from "node:assert/strict";
import { type CliResult, runCli } from "./cli.ts";
import { readRecord } from "../../src/repo/layer_record.ts";

/**
 * Every file under the given directories of the repository (default: all its
 * content) with its size, sorted: two equal snapshots mean nothing was added,
 * removed or resized there.
 */
export function repoFiles(repo: string, tops = ["objects", "layers", "blobs", "images", "tags"]): string[] {
  const out: string[] = [];
  const walk = (dir: string, rel: string) => {
    let entries: Deno.DirEntry[];
    try {
      entries = [...Deno.readDirSync(dir)];
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return;
      throw e;
    }
    for (const e of entries) {
      const path = `${dir}/${e.name}`;
      if (e.isDirectory) walk(path, `${rel}${e.name}/`);
      else out.push(`${rel}${e.name} ${Deno.lstatSync(path).size}`);
    }
  };
  for (const top of tops) walk(`${repo}/${top}`, `${top}/`);
  return out.sort();
}

/** Objects no layer record or image record names: what a failed layer or pull must never leave behind. */
export async function strayObjects(repo: string): Promise<string[]> {
  const named = new Set<string>();
  for (const line of repoFiles(repo, ["layers"])) {
    const path = `${repo}/${line.slice(0, line.lastIndexOf(" "))}`;
    for await (const item of readRecord(path)) if (item.type === "object") named.add(item.hex);
  }
  for (const line of repoFiles(repo, ["images"])) {
    const record = JSON.parse(Deno.readTextFileSync(`${repo}/${line.slice(0, line.lastIndexOf(" "))}`));
    if (typeof record.composefs === "string") named.add(record.composefs);
  }
  // objects/XX/<62 hex> <size>: the name is the fan and the file name together.
  return repoFiles(repo, ["objects"]).map((l) => l.slice("objects/".length, l.lastIndexOf(" ")).replace("/", ""))
    .filter((hex) => !named.has(hex));
}

/**
 * Asserts that a failed command left the repository's names and documents
 * (images, tags, manifests, configs) as `before` had them, and no object that no
 * layer names. (Layers that completed and verified before the failure may stay:
 * they are whole, and the next pull reuses them.)
 */
export async function assertUnchangedAfterFailure(repo: string, before: string[]): Promise<void> {
  assert.deepEqual(repoFiles(repo, ["blobs", "images", "tags"]), before, "images, tags or documents changed");
  assert.deepEqual(await strayObjects(repo), [], "objects that no layer names were left behind");
}

/** Runs `deltaship --repo REPO ARGS...` with `env`, expecting a clean failure matching `message`. */
export async function expectCleanFailure(
  repo: string,
  args: string[],
  message: RegExp,
  env: Record<string, string> = {},
): Promise<CliResult> {
  // A repository not made yet lists no images (read-only commands do not make one).
  const listed = await runCli(["--repo", repo, "--json", "images"], env);
  const before = listed.code === 0 ? listed.stdout : "[]\n";
  const files = repoFiles(repo, ["blobs", "images", "tags"]);
  const r = await runCli(["--repo", repo, ...args], env);
  assert.equal(r.code, 1, `${args.join(" ")}: expected exit 1, got ${r.code}; stderr: ${r.stderr}`);
  assert.match(r.stderr, message);
  assert.equal(r.stderr.trim().split("\n").length, 1, `one line: ${r.stderr}`);
  assert.doesNotMatch(r.stderr, /^\s+at /m);
  assert.doesNotMatch(r.stderr, /internal error/);
  if (args.includes("--json")) {
    assert.deepEqual(Object.keys(JSON.parse(r.stdout)), ["error"], "with --json, the error on stdout too");
  } else {
    assert.equal(r.stdout, "");
  }
  assert.equal((await runCli(["--repo", repo, "--json", "images"], env)).stdout, before);
  await assertUnchangedAfterFailure(repo, files);
  const fsck = await runCli(["--repo", repo, "fsck"], env);
  assert.equal(fsck.code, 0, fsck.stdout + fsck.stderr);
  assert.deepEqual([...Deno.readDirSync(`${repo}/tmp`)], []);
  return r;
}
