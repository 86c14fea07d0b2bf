import assert from "node:assert/strict";
import { deltaship, tempDir } from "./helpers/cli.ts";
import { haveTools, run } from "./helpers/interop.ts";
import { sampleTar, writeImage } from "./helpers/oci.ts";
import { describeTree } from "./helpers/tree.ts";
import { buildTar } from "./helpers/tar.ts";
import { sha256 } from "../src/util/digest.ts";

const skopeo = (...args: string[]) => run("skopeo", "--insecure-policy", ...args);

/** Reads the manifest digest skopeo wrote for `tag` into a layout. */
async function layoutDigest(dir: string, tag: string): Promise<string> {
  const index = JSON.parse(await Deno.readTextFile(`${dir}/index.json`));
  return index.manifests.find((m: { annotations?: Record<string, string> }) =>
    m.annotations?.["org.opencontainers.image.ref.name"] === tag
  ).digest;
}

Deno.test({
  name: "interop: images written by skopeo (oci:, oci-archive:, zstd) pull with exact digests",
  ignore: !haveTools("skopeo interop", "skopeo"),
  async fn() {
    await using tmp = await tempDir();
    const src = await writeImage(`${tmp.path}/src`, {
      tag: "v1",
      layers: [{ tar: sampleTar("one") }, { tar: sampleTar("two") }],
    });
    await skopeo("copy", `oci:${tmp.path}/src:v1`, `oci:${tmp.path}/copy:v1`);
    await skopeo("copy", `oci:${tmp.path}/src:v1`, `oci-archive:${tmp.path}/copy.tar:v1`);
    await skopeo(
      "copy",
      "--dest-compress-format",
      "zstd",
      "--dest-compress-level",
      "3",
      `oci:${tmp.path}/src:v1`,
      `oci:${tmp.path}/zstd:v1`,
    );
    const repo = `${tmp.path}/repo`;
    for (const source of [`oci:${tmp.path}/copy:v1`, `oci-archive:${tmp.path}/copy.tar:v1`]) {
      const r = await deltaship(repo, "--json", "pull", source);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(JSON.parse(r.stdout).config, src.config);
      assert.equal(JSON.parse(r.stdout).manifest, await layoutDigest(`${tmp.path}/copy`, "v1"));
    }
    const z = await deltaship(repo, "--json", "pull", `oci:${tmp.path}/zstd:v1`, "zstd");
    assert.equal(z.code, 0, z.stderr);
    const zManifest = JSON.parse(
      await Deno.readTextFile(
        `${tmp.path}/zstd/blobs/sha256/${(await layoutDigest(`${tmp.path}/zstd`, "v1")).slice(7)}`,
      ),
    );
    assert.equal(zManifest.layers[0].mediaType, "application/vnd.oci.image.layer.v1.tar+zstd");
    assert.equal(JSON.parse(z.stdout).config, src.config);
    for (const diffId of src.diffIds) {
      assert.equal(sha256((await deltaship(repo, "layer", diffId)).stdoutBytes), diffId);
    }
    assert.equal((await deltaship(repo, "fsck")).code, 0);
  },
});

Deno.test({
  name: "interop: layer output unpacks to the tree umoci raw unpack gives",
  ignore: !haveTools("umoci interop", "umoci", "tar"),
  async fn() {
    await using tmp = await tempDir();
    const tar = buildTar([
      { path: "bin/", type: "dir" },
      { path: "bin/prog", content: "#!/bin/sh\necho hi\n", mode: 0o755 },
      { path: "bin/alias", type: "symlink", linkname: "prog" },
      { path: "data/", type: "dir", mode: 0o700 },
      { path: "data/" + "n".repeat(120) + ".txt", content: "long name" },
      { path: "data/hard", type: "hardlink", linkname: "bin/prog" },
      { path: "data/ünï.txt", content: "unicode" },
      { path: "data/empty", content: "" },
    ]);
    const img = await writeImage(`${tmp.path}/src`, { tag: "t", layers: [{ tar }, { tar: sampleTar("s") }] });
    const repo = `${tmp.path}/repo`;
    assert.equal((await deltaship(repo, "pull", `oci:${tmp.path}/src:t`)).code, 0);
    await run("umoci", "raw", "unpack", "--rootless", "--image", `${tmp.path}/src:t`, `${tmp.path}/umoci`);
    await Deno.mkdir(`${tmp.path}/ours`);
    for (const diffId of img.diffIds) {
      const layer = await deltaship(repo, "layer", diffId);
      assert.equal(layer.code, 0);
      await Deno.writeFile(`${tmp.path}/layer.tar`, layer.stdoutBytes);
      await run("tar", "-xpf", `${tmp.path}/layer.tar`, "-C", `${tmp.path}/ours`);
    }
    assert.deepEqual(await describeTree(`${tmp.path}/ours`), await describeTree(`${tmp.path}/umoci`));
  },
});
