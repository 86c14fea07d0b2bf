/**
 * One damaged image record breaks nothing else (issue 20, item 9): fsck
 * reports every problem, naming each path; listing commands skip the damaged
 * record with a one-line warning; rm and untag can remove it; other images are
 * inspected, removed and pulled as usual; gc works around it, keeping what it
 * cannot prove unused (docs/design.md, "Damaged records"). A directory where an
 * object or a record belongs is named by fsck and gc.
 */
import assert from "node:assert/strict";
import { type CliResult, deltaship, runCli, tempDir } from "./helpers/cli.ts";
import { noise } from "./helpers/data.ts";
import { haveTools } from "./helpers/interop.ts";
import { objectPathOf } from "./helpers/objects.ts";
import { writeImage } from "./helpers/oci.ts";
import { pushImage, startRegistry } from "./helpers/registry.ts";
import { buildTar } from "./helpers/tar.ts";

/** An image of one layer holding one file of `content`, written as layout `dir/NAME` and pulled as `name`. */
async function pull(repo: string, dir: string, name: string, content: Uint8Array): Promise<Image> {
  const img = await writeImage(`${dir}/${name}`, {
    tag: name,
    layers: [{ tar: buildTar([{ path: `${name}.bin`, content }]) }],
  });
  const r = await deltaship(repo, "pull", `oci:${dir}/${name}:${name}`, name);
  assert.equal(r.code, 0, r.stderr);
  return {
    manifest: img.manifest,
    record: `images/sha256/${img.manifest.slice(7)}.json`,
    config: `blobs/sha256/${img.config.slice(7)}`,
    layer: `layers/sha256/${img.diffIds[0].slice(7)}`,
    object: objectPathOf(repo, content).slice(repo.length + 1),
  };
}

/** Paths (in the repository) of what an image of {@link pull} stored. */
interface Image {
  manifest: string;
  record: string;
  config: string;
  layer: string;
  object: string;
}

function exists(path: string): boolean {
  try {
    Deno.lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** Exit 0 and stderr lines matching `warnings`, one each (escaped), nothing else. */
function assertWarned(r: CliResult, warnings: RegExp[], what: string): void {
  assert.equal(r.code, 0, `${what}: ${r.stderr}`);
  const lines = r.stderr.trimEnd().split("\n");
  assert.equal(lines.length, warnings.length, `${what}: ${r.stderr}`);
  for (const w of warnings) assert.ok(lines.some((l) => w.test(l)), `${what}: no line matches ${w}: ${r.stderr}`);
}

Deno.test("a damaged image record: fsck names every problem, listings skip it, rm and untag work, others are untouched", async () => {
  await using tmp = await tempDir();
  const repo = `${tmp.path}/repo`;
  const a = await pull(repo, tmp.path, "a", noise(5000, 1));
  const b = await pull(repo, tmp.path, "b", noise(5000, 2));
  const c = await pull(repo, tmp.path, "c", noise(5000, 3));
  Deno.truncateSync(`${repo}/${b.record}`, 10);
  // Directories where an object, a layer record and a manifest belong (named by digests nothing uses).
  const strays = [`objects/ab/${"c".repeat(62)}`, `layers/sha256/${"d".repeat(64)}`, `blobs/sha256/${"e".repeat(64)}`];
  for (const s of strays) Deno.mkdirSync(`${repo}/${s}/sub`, { recursive: true });

  const fsck = await deltaship(repo, "fsck");
  assert.equal(fsck.code, 1, fsck.stderr);
  assert.equal(fsck.stderr, "");
  const lines = fsck.stdout.trimEnd().split("\n");
  assert.match(
    lines[0],
    new RegExp(`^${escape(b.record)}: is not JSON .*; remove it with: deltaship rm @${b.manifest}$`),
  );
  assert.match(fsck.stdout, /^object abc+: objects\/ab\/c{62} is a directory, not a regular file$/m);
  assert.match(fsck.stdout, /^layer sha256:d{64}: layers\/sha256\/d{64} is a directory, not a regular file$/m);
  assert.match(fsck.stdout, /^blob sha256:e{64}: blobs\/sha256\/e{64} is a directory, not a regular file$/m);
  assert.equal(lines.at(-1), "4 problems found; 2 images, 4 layers, 7 objects, 6 manifests and configs checked");

  // fsck of that one image reports its record as a problem (it does not say to run fsck).
  const one = await deltaship(repo, "fsck", "b");
  assert.deepEqual([one.code, one.stderr], [1, ""]);
  assert.match(one.stdout, new RegExp(`^${escape(b.record)}: is not JSON .*\n1 problems found; 0 images`));
  assert.equal((await deltaship(repo, "fsck", "a")).code, 0);

  const warning = new RegExp(
    `^warning: skipping image record ${
      escape(b.record)
    }: it is not JSON .*; remove it with: deltaship rm @${b.manifest}$`,
  );
  const images = await deltaship(repo, "--json", "images");
  assertWarned(images, [warning], "images");
  assert.deepEqual(JSON.parse(images.stdout).map((i: { tags: string[] }) => i.tags), [["a"], ["c"]]);
  const inspect = await deltaship(repo, "inspect", "b");
  assert.equal(inspect.code, 1);
  assert.match(
    inspect.stderr,
    new RegExp(`^deltaship: the record of image @${b.manifest} \\(${escape(b.record)}\\) is not JSON`),
  );
  assert.equal((await deltaship(repo, "inspect", "a")).code, 0);

  // rm of another image, by a digest prefix (found by record names, not contents); a new image pulled.
  const rm = await deltaship(repo, "rm", `@${c.manifest.slice(0, 14)}`);
  assert.equal(rm.code, 0, rm.stderr);
  assert.equal(rm.stdout, `Removed @${c.manifest} (c)\n`);
  await pull(repo, tmp.path, "d", noise(5000, 4));

  // gc names every path it cannot judge, and keeps everything a tagged damaged record could name.
  const gc = await deltaship(repo, "gc");
  assertWarned(gc, [
    new RegExp(
      `^warning: ${
        escape(b.record)
      } is not JSON .*; a tag names it, so no manifest, config, layer or object is removed$`,
    ),
    ...strays.map((s) => new RegExp(`^warning: ${escape(s)} is a directory, not a regular file; left in place$`)),
  ], "gc");
  assert.match(gc.stdout, /^Removed 0 images, 0 manifests and configs, 0 layers, 0 objects/);
  for (const path of [c.config, c.layer, c.object]) assert.ok(exists(`${repo}/${path}`), `${path} kept`);
  assert.ok(!exists(`${repo}/${c.record}`));

  // The damaged record goes with untag (it is then garbage) or rm; then gc collects what it alone named.
  const untag = await deltaship(repo, "untag", "b");
  assert.equal(untag.code, 0, untag.stderr);
  const gc2 = await deltaship(repo, "gc");
  assert.equal(gc2.code, 0, gc2.stderr);
  assert.match(gc2.stdout, /^Removed 1 image, 4 manifests and configs, 2 layers, 4 objects/);
  for (const path of [b.record, b.config, b.layer, b.object, c.config, c.layer, c.object]) {
    assert.ok(!exists(`${repo}/${path}`), `${path} removed`);
  }
  for (const s of strays) Deno.removeSync(`${repo}/${s}`, { recursive: true });
  const clean = await deltaship(repo, "fsck");
  assert.equal(clean.code, 0, clean.stdout);
  assert.match(clean.stdout, /^ok: 2 images/);
  for (const path of [a.record, a.layer, a.object]) assert.ok(exists(`${repo}/${path}`), `${path} kept`);
});

Deno.test("rm removes a damaged image record, whatever it is, and its tags", async () => {
  await using tmp = await tempDir();
  const repo = `${tmp.path}/repo`;
  const a = await pull(repo, tmp.path, "a", noise(5000, 1));
  const b = await pull(repo, tmp.path, "b", noise(5000, 2));
  assert.equal((await deltaship(repo, "tag", "b", "b2")).code, 0);
  Deno.writeTextFileSync(`${repo}/${a.record}`, '{"manifest": 5}');
  Deno.removeSync(`${repo}/${b.record}`);
  Deno.mkdirSync(`${repo}/${b.record}`); // a directory where the record belongs
  // A name that is no digest, with control characters: named, escaped, on one line.
  const evil = `${repo}/images/sha256/evil\x1b]0;title\x07\n.json`;
  Deno.writeTextFileSync(evil, "{}");
  const images = await deltaship(repo, "images");
  assert.equal(images.code, 0, images.stderr);
  const warnings = images.stderr.trimEnd().split("\n");
  assert.equal(warnings.length, 3, images.stderr);
  assert.ok(warnings.every((w) => w.startsWith("warning: skipping image record images/sha256/")), images.stderr);
  assert.ok(!images.stderr.includes("\x1b") && !images.stderr.includes("\x07"), "control characters escaped");
  assert.match(
    warnings.find((w) => w.includes("evil"))!,
    /: it is not named by a manifest digest .*; see deltaship fsck$/,
  );
  Deno.removeSync(evil);
  const fsck = await deltaship(repo, "fsck");
  assert.match(fsck.stdout, new RegExp(`^${escape(a.record)}: names another manifest digest than its file name;`, "m"));
  assert.match(fsck.stdout, new RegExp(`^${escape(b.record)}: is a directory, not a regular file;`, "m"));
  for (const [name, image, tags] of [["a", a, "a"], ["b2", b, "b, b2"]] as const) {
    const r = await deltaship(repo, "rm", name);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `Removed @${image.manifest} (${tags})\n`);
    assert.ok(!exists(`${repo}/${image.record}`));
  }
  assert.deepEqual([...Deno.readDirSync(`${repo}/tags`)], []);
  assert.equal((await deltaship(repo, "gc")).code, 0);
  assert.equal((await deltaship(repo, "fsck")).code, 0);
});

Deno.test("gc: a damaged layer record a kept image names keeps every object, and is named", async () => {
  await using tmp = await tempDir();
  const repo = `${tmp.path}/repo`;
  const a = await pull(repo, tmp.path, "a", noise(5000, 1));
  const b = await pull(repo, tmp.path, "b", noise(5000, 2));
  assert.equal((await deltaship(repo, "rm", "b")).code, 0);
  Deno.truncateSync(`${repo}/${a.layer}`, 100);
  const gc = await deltaship(repo, "gc");
  assertWarned(
    gc,
    [new RegExp(`^warning: ${escape(a.layer)} cannot be read \\(.*\\); so no object is removed$`)],
    "gc",
  );
  assert.match(gc.stdout, /^Removed 0 images, 2 manifests and configs, 1 layer, 0 objects/);
  assert.ok(exists(`${repo}/${b.object}`), "b's object kept: a's record might name it");
  assert.ok(!exists(`${repo}/${b.layer}`));
  assert.ok(exists(`${repo}/${a.object}`));
});

Deno.test({
  name: "a damaged image record does not stop a pull from a registry (delta discovery lists the images held)",
  ignore: !haveTools("pull past a damaged record", "docker-registry", "skopeo"),
  async fn() {
    await using tmp = await tempDir();
    await using reg = await startRegistry();
    const repo = `${tmp.path}/repo`;
    const a = await pull(repo, tmp.path, "a", noise(5000, 1));
    Deno.truncateSync(`${repo}/${a.record}`, 0);
    await writeImage(`${tmp.path}/remote`, { tag: "v1", layers: [{ tar: buildTar([{ path: "f", content: "f" }]) }] });
    await pushImage(`oci:${tmp.path}/remote:v1`, `docker://${reg.host}/app:v1`);
    const r = await runCli(["--repo", repo, "pull", `docker://${reg.host}/app:v1`, "remote"], {
      HOME: tmp.path,
      DELTASHIP_RETRY_BASE_MS: "5",
    });
    assert.equal(r.code, 0, r.stderr);
    const images = await deltaship(repo, "images");
    assert.match(images.stdout, /^remote /m);
  },
});
