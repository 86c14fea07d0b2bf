import assert from "node:assert/strict";
import { deltaship, tempDir } from "./helpers/cli.ts";
import { sampleTar, writeImage } from "./helpers/oci.ts";
import { buildTar } from "./helpers/tar.ts";
import { objectHex, objectPathOf } from "./helpers/objects.ts";

async function pulled(tmp: string) {
  const content = "object content that will be damaged\n".repeat(20);
  const img = await writeImage(`${tmp}/l`, {
    tag: "x",
    layers: [{ tar: buildTar([{ path: "victim", content }]) }, { tar: sampleTar("other") }],
  });
  const repo = `${tmp}/repo`;
  assert.equal((await deltaship(repo, "pull", `oci:${tmp}/l:x`)).code, 0);
  return { repo, img, objectHex: objectHex(content), objectPath: objectPathOf(repo, content) };
}

Deno.test("fsck is clean after pulls and reports what it checked", async () => {
  await using tmp = await tempDir();
  const { repo } = await pulled(tmp.path);
  const r = await deltaship(repo, "--json", "fsck");
  assert.equal(r.code, 0, r.stdout);
  const report = JSON.parse(r.stdout);
  assert.equal(report.ok, true);
  assert.equal(report.checked.images, 1);
  assert.equal(report.checked.layers, 2);
  assert.equal(report.checked.blobs, 2);
  assert.ok(report.checked.objects >= 5);
});

Deno.test("fsck finds a damaged object and the layer and image that use it", async () => {
  await using tmp = await tempDir();
  const { repo, img, objectHex, objectPath: path } = await pulled(tmp.path);
  const bytes = await Deno.readFile(path);
  bytes[3] ^= 0x20;
  await Deno.writeFile(path, bytes);
  const r = await deltaship(repo, "fsck");
  assert.equal(r.code, 1);
  assert.match(r.stdout, new RegExp(`^object ${objectHex}: content's fs-verity digest is [0-9a-f]{64}$`, "m"));
  assert.match(r.stdout, new RegExp(`^image @${img.manifest}: layer ${img.diffIds[0]} is missing or damaged`, "m"));
  assert.match(r.stdout, /problems found/);
  // Checking only the image finds it too; the layer command refuses nothing but rebuilds wrong bytes.
  assert.equal((await deltaship(repo, "fsck", "x")).code, 1);
});

Deno.test("fsck finds missing layers, damaged manifests and dangling tags", async () => {
  await using tmp = await tempDir();
  const { repo, img } = await pulled(tmp.path);
  await Deno.remove(`${repo}/layers/sha256/${img.diffIds[1].slice(7)}`);
  await Deno.writeTextFile(`${repo}/blobs/sha256/${img.manifest.slice(7)}`, "{}");
  await Deno.writeTextFile(`${repo}/tags/dangling`, `sha256:${"1".repeat(64)}\n`);
  const r = await deltaship(repo, "--json", "fsck");
  assert.equal(r.code, 1);
  const subjects = JSON.parse(r.stdout).problems.map((p: { subject: string }) => p.subject);
  assert.ok(subjects.includes(`layer ${img.diffIds[1]}`), subjects.join());
  assert.ok(subjects.includes(`blob ${img.manifest}`), subjects.join());
  assert.ok(subjects.includes("tag dangling"), subjects.join());
});

Deno.test("layer refuses unknown diff_ids and malformed digests", async () => {
  await using tmp = await tempDir();
  const { repo } = await pulled(tmp.path);
  const unknown = await deltaship(repo, "layer", `sha256:${"2".repeat(64)}`);
  assert.equal(unknown.code, 1);
  assert.match(unknown.stderr, /layer sha256:2{64} is not in the repository/);
  const bad = await deltaship(repo, "layer", "sha256:xyz");
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /DIFF_ID "sha256:xyz" has a malformed sha256 value/);
});
