/**
 * An export killed with SIGKILL (no cleanup code runs) leaves the destination
 * as it was, and never blocks the same export from succeeding afterwards.
 */
import assert from "node:assert/strict";
import { deltaship, deltashipCommand, tempDir } from "./helpers/cli.ts";
import { largestFile, noise } from "./helpers/data.ts";
import { haveTools, run } from "./helpers/interop.ts";
import { sampleTar, writeImage } from "./helpers/oci.ts";
import { buildTar } from "./helpers/tar.ts";

/** Starts `export big DEST` as a child process and kills it with SIGKILL once a blob is being written under `watch`. */
async function killMidExport(repo: string, dest: string, watch: string): Promise<void> {
  const child = deltashipCommand(["--repo", repo, "-j", "1", "export", "big", dest, "--compression", "gzip"]).spawn();
  const deadline = Date.now() + 60_000;
  while (largestFile(watch) < (1 << 20)) {
    assert.ok(Date.now() < deadline, `export to ${dest} never started writing`);
    await new Promise((r) => setTimeout(r, 2));
  }
  child.kill("SIGKILL");
  assert.equal((await child.status).signal, "SIGKILL");
  await child.stdout.cancel();
  await child.stderr.cancel();
}

/** Names in `dir`, sorted. */
function names(dir: string): string[] {
  return [...Deno.readDirSync(dir)].map((e) => e.name).sort();
}

/** Pulls `ref` into a fresh repository: the layout (or archive) reads back, every digest checked. */
async function readsBack(tmp: string, ref: string): Promise<void> {
  const repo = `${tmp}/check-${crypto.randomUUID().slice(0, 8)}`;
  const r = await deltaship(repo, "pull", ref);
  assert.equal(r.code, 0, `${ref}: ${r.stderr}`);
  await Deno.remove(repo, { recursive: true });
}

Deno.test("SIGKILL during export: new oci:DIR, existing layout and oci-archive are left as they were; the same export then succeeds", async (t) => {
  await using tmp = await tempDir();
  await writeImage(`${tmp.path}/src`, {
    tag: "big",
    layers: [{ tar: buildTar([{ path: "big.bin", content: noise(24 << 20, 8) }]), compression: "none" }],
  });
  const repo = `${tmp.path}/repo`;
  assert.equal((await deltaship(repo, "pull", `oci:${tmp.path}/src:big`)).code, 0);
  const dest = `${tmp.path}/dest`;
  await Deno.mkdir(dest);
  const skopeo = haveTools("export SIGKILL: skopeo inspect of the result", "skopeo");

  await t.step("a new oci:DIR", async () => {
    await killMidExport(repo, `oci:${dest}/new`, dest);
    assert.ok(!names(dest).includes("new"), `the layout does not exist: ${names(dest)}`);
    const again = await deltaship(repo, "export", "big", `oci:${dest}/new`);
    assert.equal(again.code, 0, again.stderr);
    assert.deepEqual(names(dest), ["new"], "the dead export's staging directory was removed");
    assert.deepEqual(names(`${dest}/new`), ["blobs", "index.json", "oci-layout"]);
    await readsBack(tmp.path, `oci:${dest}/new:big`);
    if (skopeo) assert.match(await run("skopeo", "inspect", `oci:${dest}/new:big`), /"Layers"/);
  });

  await t.step("an existing layout", async () => {
    const layout = `${dest}/layout`;
    await writeImage(layout, { tag: "keep", layers: [{ tar: sampleTar("keep") }] });
    const index = Deno.readFileSync(`${layout}/index.json`);
    const blobs = names(`${layout}/blobs/sha256`);
    await killMidExport(repo, `oci:${layout}:big`, layout);
    assert.deepEqual(Deno.readFileSync(`${layout}/index.json`), index, "index.json unchanged");
    assert.deepEqual(names(`${layout}/blobs/sha256`), blobs, "no blob added, no partial blob");
    const again = await deltaship(repo, "export", "big", `oci:${layout}:big`);
    assert.equal(again.code, 0, again.stderr);
    assert.deepEqual(names(layout), ["blobs", "index.json", "oci-layout"], "the dead export's staging was removed");
    await readsBack(tmp.path, `oci:${layout}:keep`);
    await readsBack(tmp.path, `oci:${layout}:big`);
  });

  await t.step("an empty directory", async () => {
    const empty = `${dest}/empty`;
    await Deno.mkdir(empty);
    await killMidExport(repo, `oci:${empty}`, empty);
    const again = await deltaship(repo, "export", "big", `oci:${empty}:big`);
    assert.equal(again.code, 0, again.stderr);
    assert.deepEqual(names(empty), ["blobs", "index.json", "oci-layout"]);
    await readsBack(tmp.path, `oci:${empty}:big`);
  });

  await t.step("an oci-archive", async () => {
    const archives = `${dest}/archives`;
    await Deno.mkdir(archives);
    await killMidExport(repo, `oci-archive:${archives}/big.tar`, archives);
    assert.ok(!names(archives).includes("big.tar"));
    const again = await deltaship(repo, "export", "big", `oci-archive:${archives}/big.tar`);
    assert.equal(again.code, 0, again.stderr);
    assert.deepEqual(names(archives), ["big.tar"], "the dead export's partial archive was removed");
    await readsBack(tmp.path, `oci-archive:${archives}/big.tar`);
  });
});

Deno.test("a directory left with blobs but no index.json (a commit killed into an empty directory) takes the export", async () => {
  await using tmp = await tempDir();
  await writeImage(`${tmp.path}/src`, { tag: "v1", layers: [{ tar: sampleTar("x") }] });
  const repo = `${tmp.path}/repo`;
  assert.equal((await deltaship(repo, "pull", `oci:${tmp.path}/src:v1`, "app")).code, 0);
  const dir = `${tmp.path}/partial`;
  await Deno.mkdir(`${dir}/blobs/sha256`, { recursive: true });
  await Deno.writeTextFile(`${dir}/oci-layout`, '{"imageLayoutVersion":"1.0.0"}');
  const r = await deltaship(repo, "export", "app", `oci:${dir}:app`);
  assert.equal(r.code, 0, r.stderr);
  await readsBack(tmp.path, `oci:${dir}:app`);
  // Anything else in a directory without index.json is still refused.
  await Deno.mkdir(`${tmp.path}/other/blobs`, { recursive: true });
  await Deno.writeTextFile(`${tmp.path}/other/notes.txt`, "mine");
  const refused = await deltaship(repo, "export", "app", `oci:${tmp.path}/other`);
  assert.equal(refused.code, 2);
  assert.match(refused.stderr, /is a non-empty directory that is not an OCI layout/);
  assert.deepEqual(names(`${tmp.path}/other`), ["blobs", "notes.txt"]);
});
