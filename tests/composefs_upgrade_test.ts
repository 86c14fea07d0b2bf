/**
 * The repository step that makes stored composefs images again by the current
 * tree rules (repo/composefs_upgrade.ts): a repository whose records name
 * images made by older rules (and no `composefs-rules.json`) is found out by
 * fsck, brought up to date by `upgrade` or by the first command that writes,
 * also from the state a killed step leaves (some records done, the rules file
 * not written), and the old images are left to gc.
 */
import assert from "node:assert/strict";
import { deltaship, tempDir } from "./helpers/cli.ts";

const RULES = new URL("../testdata/composefs-rs-rules/", import.meta.url).pathname;
const PROBES = ["p01-xattrs", "p02-pax-nsec"];

/** The record file of each image of `repo`, by tag. */
function records(repo: string): Map<string, { path: string; record: Record<string, unknown> }> {
  const out = new Map();
  for (const e of Deno.readDirSync(`${repo}/tags`)) {
    const manifest = Deno.readTextFileSync(`${repo}/tags/${e.name}`).trim();
    const path = `${repo}/images/sha256/${manifest.slice(7)}.json`;
    out.set(e.name, { path, record: JSON.parse(Deno.readTextFileSync(path)) });
  }
  return out;
}

function objectPath(repo: string, id: string): string {
  return `${repo}/objects/${id.slice(0, 2)}/${id.slice(2)}`;
}

/**
 * A repository as an older deltaship left it: each image's record names an image
 * made by other rules (here: keeping user.* and every other xattr of p01 — what the
 * first rules kept — stands for it: another tree, so another id), stored as an
 * object, and no rules file. Returns the ids the current rules give.
 */
async function olderRepository(dir: string): Promise<{ repo: string; current: Map<string, string> }> {
  const repo = `${dir}/repo`;
  const current = new Map<string, string>();
  for (const p of PROBES) {
    assert.equal((await deltaship(repo, "pull", `oci:${RULES}${p}:${p}`, p)).code, 0);
    current.set(p, (await deltaship(repo, "compute-id", p)).stdout.trim());
    const dump = (await deltaship(repo, "dump", p, "--xattrs", "keep-user-xattrs")).stdout;
    // One more xattr on the root: a tree the current rules do not give, whatever the probe.
    await Deno.writeTextFile(`${dir}/${p}.dump`, dump.replace(/\n/, " user.older=rules\n"));
    const made = await deltaship(repo, "--json", "create-image", "--from-dump", `${dir}/${p}.dump`, `${dir}/${p}.img`);
    const { id } = JSON.parse(made.stdout);
    await Deno.mkdir(`${repo}/objects/${id.slice(0, 2)}`, { recursive: true });
    await Deno.copyFile(`${dir}/${p}.img`, objectPath(repo, id));
    const { path, record } = records(repo).get(p)!;
    await Deno.writeTextFile(path, JSON.stringify({ ...record, composefs: id }, null, 1) + "\n");
  }
  await Deno.remove(`${repo}/composefs-rules.json`);
  return { repo, current };
}

Deno.test("composefs rules upgrade: fsck names the images made by older rules, upgrade makes them again", async () => {
  await using tmp = await tempDir();
  const { repo, current } = await olderRepository(tmp.path);
  const old = [...records(repo).values()].map((r) => r.record.composefs as string);
  const fsck = await deltaship(repo, "fsck");
  assert.equal(fsck.code, 1);
  assert.match(
    fsck.stdout + fsck.stderr,
    /differs from the one rebuilt by the current rules \(it was made by older ones: run 'deltaship upgrade'\)/,
  );
  const up = await deltaship(repo, "--progress", "always", "upgrade");
  assert.equal(up.code, 0, up.stderr);
  assert.match(
    up.stdout,
    /^The repository is at format version 2 already\nMade the composefs images of 2 images by the current rules in \d+\.\d s: 2 changed\n$/,
  );
  assert.match(up.stderr, /composefs images/, "a progress line");
  for (const [tag, { record }] of records(repo)) assert.equal(record.composefs, current.get(tag), tag);
  assert.deepEqual(JSON.parse(Deno.readTextFileSync(`${repo}/composefs-rules.json`)), { rules: 2 });
  assert.equal((await deltaship(repo, "fsck")).code, 0);
  const again = await deltaship(repo, "upgrade");
  assert.deepEqual([again.code, again.stdout], [0, "The repository is at format version 2 already\n"]);
  assert.equal((await deltaship(repo, "gc")).code, 0);
  for (const id of old) {
    assert.throws(() => Deno.statSync(objectPath(repo, id)), Deno.errors.NotFound, "old image gone");
  }
  for (const id of current.values()) assert.ok(Deno.statSync(objectPath(repo, id)).isFile);
});

Deno.test("composefs rules upgrade: the first command that writes finishes a step a kill left half done", async () => {
  await using tmp = await tempDir();
  const { repo, current } = await olderRepository(tmp.path);
  // Killed after the first record: it names the current image, the other an old one, no rules file.
  const first = records(repo).get(PROBES[0])!;
  await Deno.writeTextFile(first.path, JSON.stringify({ ...first.record, composefs: current.get(PROBES[0]) }, null, 1));
  const tag = await deltaship(repo, "tag", PROBES[1], "again");
  assert.equal(tag.code, 0, tag.stderr);
  assert.match(tag.stderr, /^Made the composefs images of 2 images by the current rules in .*: 1 changed\n$/);
  for (const [name, { record }] of records(repo)) {
    assert.equal(record.composefs, current.get(name === "again" ? PROBES[1] : name), name);
  }
  assert.equal((await deltaship(repo, "fsck")).code, 0);
});

Deno.test("composefs rules upgrade: a new repository is at the current rules, and says nothing about it", async () => {
  await using tmp = await tempDir();
  const repo = `${tmp.path}/repo`;
  const pulled = await deltaship(repo, "pull", `oci:${RULES}${PROBES[0]}:${PROBES[0]}`, "x");
  assert.equal(pulled.code, 0, pulled.stderr);
  assert.doesNotMatch(pulled.stderr, /composefs images/);
  assert.deepEqual(JSON.parse(Deno.readTextFileSync(`${repo}/composefs-rules.json`)), { rules: 2 });
});
