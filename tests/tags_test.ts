/**
 * Damaged tags never disable recovery: listing commands skip a malformed tag file
 * with a warning, fsck names it, and untag removes any tag file whatever it holds.
 */
import assert from "node:assert/strict";
import { deltaship, tempDir } from "./helpers/cli.ts";
import { sampleTar, writeImage } from "./helpers/oci.ts";

Deno.test("tags: malformed tag files are skipped with a warning, named by fsck, removable by untag", async () => {
  await using tmp = await tempDir();
  const repo = `${tmp.path}/repo`;
  const img = await writeImage(`${tmp.path}/l`, { tag: "good", layers: [{ tar: sampleTar("good") }] });
  assert.equal((await deltaship(repo, "pull", `oci:${tmp.path}/l:good`)).code, 0);
  await Deno.writeTextFile(`${repo}/tags/bad`, "garbage ../../etc\n");
  await Deno.writeTextFile(`${repo}/tags/empty`, "");
  await Deno.writeTextFile(`${repo}/tags/%zz`, `${img.manifest}\n`); // a name that does not decode
  await Deno.mkdir(`${repo}/tags/dir`);

  const images = await deltaship(repo, "images");
  assert.equal(images.code, 0, images.stderr);
  assert.match(images.stdout, /^good /m);
  assert.match(
    images.stderr,
    /warning: skipping tag file tags\/bad: it does not hold a manifest digest; remove it with: deltaship untag bad/,
  );
  assert.match(images.stderr, /tags\/%zz: its file name is not a valid tag name/);
  assert.match(images.stderr, /tags\/dir: it is not a regular file/);
  const json = await deltaship(repo, "--json", "images");
  assert.equal(json.code, 0);
  assert.deepEqual(JSON.parse(json.stdout).map((i: { tags: string[] }) => i.tags), [["good"]]);

  const dry = await deltaship(repo, "gc", "--dry-run");
  assert.equal(dry.code, 0, dry.stderr);
  assert.match(dry.stderr, /skipping tag file tags\/bad/);
  assert.match(dry.stdout, /Would remove 0 images/);

  const inspect = await deltaship(repo, "inspect", "bad");
  assert.equal(inspect.code, 1);
  assert.match(inspect.stderr, /tag "bad" is malformed .*remove it with: deltaship untag bad/);

  const fsck = await deltaship(repo, "fsck");
  assert.equal(fsck.code, 1);
  for (const name of ["bad", "empty", "dir", "file %zz"]) {
    assert.match(fsck.stdout, new RegExp(`^tag ${name}: is malformed`, "m"), fsck.stdout);
  }

  for (const name of ["bad", "empty", "%zz", "dir"]) {
    const r = await deltaship(repo, "untag", name);
    assert.equal(r.code, 0, `${name}: ${r.stderr}`);
  }
  assert.equal((await deltaship(repo, "untag", "bad")).code, 1); // gone now
  const clean = await deltaship(repo, "fsck");
  assert.equal(clean.code, 0, clean.stdout);
  assert.deepEqual([...Deno.readDirSync(`${repo}/tags`)].map((e) => e.name), ["good"]);
});
