/**
 * zstd:chunked against the tools that write and read it: skopeo 1.9 (its
 * containers/storage cuts the same chunks and lists the same TOC entries as
 * deltaship), a real registry read back with skopeo (same digests, layers that
 * decompress to their diff_ids), deltaship's own pull of what it pushed, exports
 * that are reproducible, and re-exports that drop the TOC annotations of the
 * blob they replace.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { runCli, tempDir } from "./helpers/cli.ts";
import { chunkedSampleTar, skopeoChunkedSample, type TocJsonEntry, unzstd } from "./helpers/chunked.ts";
import { haveTools } from "./helpers/interop.ts";
import { sampleTar, writeImage } from "./helpers/oci.ts";
import { copyFromRegistry, rawManifest, startRegistry } from "./helpers/registry.ts";

const sha = (b: Uint8Array) => `sha256:${createHash("sha256").update(b).digest("hex")}`;

interface Layout {
  manifest: string;
  layers: { mediaType: string; digest: string; size: number; annotations?: Record<string, string> }[];
  diffIds: string[];
  blob(digest: string): Uint8Array;
}

/** The (only) image of an OCI layout. */
function readLayout(dir: string): Layout {
  const blob = (d: string) => Deno.readFileSync(`${dir}/blobs/sha256/${d.slice(7)}`);
  const index = JSON.parse(Deno.readTextFileSync(`${dir}/index.json`));
  const manifest = index.manifests[0].digest;
  const m = JSON.parse(new TextDecoder().decode(blob(manifest)));
  const config = JSON.parse(new TextDecoder().decode(blob(m.config.digest)));
  return { manifest, layers: m.layers, diffIds: config.rootfs.diff_ids, blob };
}

/** The TOC entries of a layer (either annotation names), without what depends on the frames' bytes. */
function tocEntries(layout: Layout, i: number): TocJsonEntry[] {
  const l = layout.layers[i];
  const key = Object.keys(l.annotations ?? {}).find((k) => k.endsWith("zstd-chunked.manifest-position"));
  assert.ok(key, `layer ${i} has a TOC position`);
  const [offset, length] = l.annotations![key].split(":").map(Number);
  const toc = JSON.parse(new TextDecoder().decode(unzstd(layout.blob(l.digest).subarray(offset, offset + length))));
  return toc.entries.map((e: TocJsonEntry) => {
    const { offset: _o, endOffset: _e, ...rest } = e;
    // skopeo 1.9's containers/storage wrote unset times as Go's zero time; it leaves them out now.
    for (const k of ["accesstime", "changetime"]) if (rest[k] === "0001-01-01T00:00:00Z") delete rest[k];
    return rest;
  });
}

Deno.test({
  name:
    "zstd:chunked interop: skopeo 1.9 lists the same TOC entries, chunks and digests as deltaship for the same layer",
  ignore: !haveTools("zstd:chunked TOC", "skopeo"),
  async fn() {
    await using tmp = await tempDir();
    await skopeoChunkedSample(tmp.path);
    const repo = `${tmp.path}/repo`;
    assert.equal((await runCli(["--repo", repo, "-q", "pull", `oci:${tmp.path}/src:t`, "t"])).code, 0);
    const r = await runCli([
      "--repo",
      repo,
      "-q",
      "export",
      "t",
      `oci:${tmp.path}/ours:t`,
      "--compression",
      "zstd:chunked",
    ]);
    assert.equal(r.code, 0, r.stderr);
    const theirs = tocEntries(readLayout(`${tmp.path}/skopeo`), 0);
    const ours = tocEntries(readLayout(`${tmp.path}/ours`), 0);
    assert.ok(theirs.filter((e) => e.type === "chunk").length > 15, "the layer has files of many chunks");
    assert.ok(theirs.some((e) => e.chunkType === "zeros"), "and holes");
    assert.deepEqual(ours, theirs);
  },
});

Deno.test({
  name:
    "zstd:chunked interop: push to a registry, skopeo copies it back with the same digests, deltaship pulls it back",
  ignore: !haveTools("zstd:chunked push", "docker-registry", "skopeo"),
  async fn() {
    await using tmp = await tempDir();
    await using reg = await startRegistry();
    const image = await writeImage(`${tmp.path}/src`, {
      tag: "v1",
      layers: [{ tar: sampleTar("one") }, { tar: chunkedSampleTar(), compression: "zstd" }],
    });
    const repo = `${tmp.path}/repo`;
    assert.equal((await runCli(["--repo", repo, "-q", "pull", `oci:${tmp.path}/src:v1`, "app"])).code, 0);
    const target = `${reg.host}/chunked/app:v1`;
    const push = await runCli([
      "--repo",
      repo,
      "--json",
      "push",
      "app",
      `docker://${target}`,
      "--compression",
      "zstd:chunked",
    ]);
    assert.equal(push.code, 0, push.stderr);
    const pushed = JSON.parse(push.stdout).manifest;
    assert.equal(sha(await rawManifest(target)), pushed);
    await copyFromRegistry(`docker://${target}`, `oci:${tmp.path}/back:v1`);
    const back = readLayout(`${tmp.path}/back`);
    assert.equal(back.manifest, pushed, "skopeo keeps the manifest byte for byte");
    assert.deepEqual(back.diffIds, image.diffIds, "the config (and so the image ID) is unchanged");
    back.layers.forEach((l, i) => {
      assert.equal(l.mediaType, "application/vnd.oci.image.layer.v1.tar+zstd");
      assert.deepEqual(Object.keys(l.annotations ?? {}).sort(), [
        "io.github.containers.zstd-chunked.manifest-checksum",
        "io.github.containers.zstd-chunked.manifest-position",
        "io.github.containers.zstd-chunked.tarsplit-position",
      ]);
      const blob = back.blob(l.digest);
      assert.equal(sha(blob), l.digest);
      assert.equal(sha(unzstd(blob)), image.diffIds[i], `layer ${i} decompresses to its diff_id`);
    });
    // An export of the same image is the same blobs: the push's manifest.
    const exported = await runCli([
      "--repo",
      repo,
      "--json",
      "export",
      "app",
      `oci:${tmp.path}/x:v1`,
      "--compression",
      "zstd:chunked",
    ]);
    assert.equal(JSON.parse(exported.stdout).manifest, pushed);
    // deltaship pulls what it pushed, with the manifest's digest.
    const again = `${tmp.path}/again`;
    const pull = await runCli(["--repo", again, "--json", "pull", `docker://${target}`, "app"]);
    assert.equal(pull.code, 0, pull.stderr);
    assert.equal(JSON.parse(pull.stdout).manifest, pushed);
    assert.equal((await runCli(["--repo", again, "fsck"])).code, 0);
  },
});

Deno.test("zstd:chunked export: the same bytes whatever the jobs, and a re-export drops the TOC annotations it replaces", async () => {
  await using tmp = await tempDir();
  await writeImage(`${tmp.path}/src`, {
    tag: "v1",
    layers: [{ tar: chunkedSampleTar(), compression: "none" }, { tar: sampleTar("two") }],
  });
  const repo = `${tmp.path}/repo`;
  assert.equal((await runCli(["--repo", repo, "-q", "pull", `oci:${tmp.path}/src:v1`, "app"])).code, 0);
  const manifests: string[] = [];
  for (const [dest, jobs] of [["a", "1"], ["b", "2"], ["c", "4"]]) {
    const r = await runCli([
      "--repo",
      repo,
      "--json",
      "-j",
      jobs,
      "export",
      "app",
      `oci:${tmp.path}/${dest}:v1`,
      "--compression",
      "zstd:chunked",
    ]);
    assert.equal(r.code, 0, r.stderr);
    manifests.push(JSON.parse(r.stdout).manifest);
  }
  assert.deepEqual(new Set(manifests).size, 1, `one manifest: ${manifests}`);
  // Pulled as zstd:chunked, exported as gzip: the annotations that described the zstd blob go.
  const chunked = `${tmp.path}/repo2`;
  assert.equal((await runCli(["--repo", chunked, "-q", "pull", `oci:${tmp.path}/a:v1`, "app"])).code, 0);
  assert.equal((await runCli(["--repo", chunked, "-q", "export", "app", `oci:${tmp.path}/gz:v1`])).code, 0);
  for (const l of readLayout(`${tmp.path}/gz`).layers) {
    assert.equal(l.mediaType, "application/vnd.oci.image.layer.v1.tar+gzip");
    assert.equal(l.annotations, undefined);
  }
  // ... and exported as zstd:chunked again: its own, the same as the first time.
  const r = await runCli([
    "--repo",
    chunked,
    "--json",
    "export",
    "app",
    `oci:${tmp.path}/again:v1`,
    "--compression",
    "zstd:chunked",
  ]);
  assert.equal(JSON.parse(r.stdout).manifest, manifests[0]);
});
