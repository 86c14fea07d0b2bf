import assert from "node:assert/strict";
import { sha256 } from "../src/util/digest.ts";
import { deltaship, tempDir } from "./helpers/cli.ts";
import { packArchive, sampleTar, writeImage, writeIndex } from "./helpers/oci.ts";
import { buildTar } from "./helpers/tar.ts";
import { objectFiles, objectHex } from "./helpers/objects.ts";

Deno.test("pull from oci: by tag, then layer rebuilds each diff_id byte for byte", async () => {
  await using tmp = await tempDir();
  const img = await writeImage(`${tmp.path}/layout`, {
    tag: "v1",
    layers: [{ tar: sampleTar("a") }, { tar: sampleTar("b"), compression: "zstd" }, {
      tar: sampleTar("c"),
      compression: "none",
    }],
  });
  const repo = `${tmp.path}/repo`;
  const r = await deltaship(repo, "--json", "pull", `oci:${tmp.path}/layout:v1`);
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  assert.equal(out.manifest, img.manifest);
  assert.equal(out.config, img.config);
  assert.equal(out.name, "v1");
  assert.equal(out.layersFetched, 3);
  for (let i = 0; i < 3; i++) {
    const layer = await deltaship(repo, "layer", img.diffIds[i]);
    assert.equal(layer.code, 0, layer.stderr);
    assert.deepEqual(layer.stdoutBytes, img.tars[i]);
  }
  const manifest = await deltaship(repo, "inspect", "v1", "--manifest");
  assert.deepEqual(manifest.stdoutBytes, img.manifestBytes);
  const config = await deltaship(repo, "inspect", `@${img.manifest}`, "--config");
  assert.deepEqual(config.stdoutBytes, img.configBytes);
  assert.equal((await deltaship(repo, "fsck")).code, 0);
});

Deno.test("pull from oci-archive: reads the archive in place, by tag and by digest", async () => {
  await using tmp = await tempDir();
  const a = await writeImage(`${tmp.path}/layout`, { tag: "a", layers: [{ tar: sampleTar("a") }] });
  const b = await writeImage(`${tmp.path}/layout`, { tag: "b", layers: [{ tar: sampleTar("b") }] });
  await packArchive(`${tmp.path}/layout`, `${tmp.path}/img.tar`);
  const repo = `${tmp.path}/repo`;
  const r1 = await deltaship(repo, "--json", "pull", `oci-archive:${tmp.path}/img.tar:a`);
  assert.equal(r1.code, 0, r1.stderr);
  assert.equal(JSON.parse(r1.stdout).manifest, a.manifest);
  const r2 = await deltaship(repo, "--json", "pull", `oci-archive:${tmp.path}/img.tar:${b.manifest}`, "bee");
  assert.equal(r2.code, 0, r2.stderr);
  assert.equal(JSON.parse(r2.stdout).manifest, b.manifest);
  const images = JSON.parse((await deltaship(repo, "--json", "images")).stdout);
  assert.deepEqual(images.map((i: { tags: string[] }) => i.tags).flat().sort(), ["a", "bee"]);
  // Nothing was unpacked next to the archive or in the temp area.
  assert.deepEqual([...Deno.readDirSync(tmp.path)].map((e) => e.name).sort(), ["img.tar", "layout", "repo"]);
});

Deno.test("a layout with one manifest needs no REF; NAME defaults to its tag", async () => {
  await using tmp = await tempDir();
  const img = await writeImage(`${tmp.path}/one`, { tag: "only", layers: [{ tar: sampleTar() }] });
  const repo = `${tmp.path}/repo`;
  const r = await deltaship(repo, "--json", "pull", `oci:${tmp.path}/one`);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(JSON.parse(r.stdout).name, "only");
  assert.equal(JSON.parse(r.stdout).manifest, img.manifest);
  const untagged = await writeImage(`${tmp.path}/untagged`, { layers: [{ tar: sampleTar("u") }] });
  const r2 = await deltaship(repo, "pull", `oci:${tmp.path}/untagged`);
  assert.equal(r2.code, 0, r2.stderr);
  assert.match(r2.stdout, new RegExp(`^Pulled @${untagged.manifest}`));
  assert.match(r2.stderr, /untagged; name it with: deltaship tag @sha256:[0-9a-f]{12} NAME/);
  assert.equal((await deltaship(repo, "inspect", `@${untagged.manifest.slice(0, 20)}`)).code, 0);
});

Deno.test("an index picks the host platform, or --platform; docker manifest lists too", async () => {
  await using tmp = await tempDir();
  const dir = `${tmp.path}/multi`;
  const amd = await writeImage(dir, { layers: [{ tar: sampleTar("amd") }], noIndexEntry: true });
  const arm = await writeImage(dir, {
    layers: [{ tar: sampleTar("arm") }],
    platform: { os: "linux", architecture: "arm64", variant: "v8" },
    noIndexEntry: true,
    docker: true,
  });
  await writeIndex(dir, "multi", [
    { image: amd, platform: { os: "linux", architecture: "amd64" } },
    { image: arm, platform: { os: "linux", architecture: "arm64", variant: "v8" } },
  ]);
  await writeIndex(dir, "list", [
    { image: arm, platform: { os: "linux", architecture: "arm64", variant: "v8" } },
  ], true);
  const repo = `${tmp.path}/repo`;
  const armPull = await deltaship(repo, "--json", "pull", "--platform", "linux/arm64", `oci:${dir}:multi`);
  assert.equal(armPull.code, 0, armPull.stderr);
  assert.equal(JSON.parse(armPull.stdout).manifest, arm.manifest);
  const amdPull = await deltaship(repo, "--json", "pull", "--platform", "linux/amd64", `oci:${dir}:multi`, "amd");
  assert.equal(JSON.parse(amdPull.stdout).manifest, amd.manifest);
  const list = await deltaship(repo, "--json", "pull", "--platform", "linux/arm64/v8", `oci:${dir}:list`);
  assert.equal(list.code, 0, list.stderr);
  assert.equal(JSON.parse(list.stdout).manifest, arm.manifest);
  const none = await deltaship(repo, "pull", "--platform", "linux/s390x", `oci:${dir}:multi`);
  assert.equal(none.code, 1);
  assert.match(none.stderr, /no image for platform linux\/s390x; available: linux\/amd64, linux\/arm64\/v8/);
});

Deno.test("docker schema 2 manifests, nondistributable and plain tar layers pull", async () => {
  await using tmp = await tempDir();
  const docker = await writeImage(`${tmp.path}/d`, { tag: "d", docker: true, layers: [{ tar: sampleTar("d") }] });
  const nd = await writeImage(`${tmp.path}/d`, {
    tag: "nd",
    layers: [
      { tar: sampleTar("n"), mediaType: "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip" },
      {
        tar: sampleTar("z"),
        compression: "zstd",
        mediaType: "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
      },
    ],
  });
  const repo = `${tmp.path}/repo`;
  for (const [tag, img] of [["d", docker], ["nd", nd]] as const) {
    const r = await deltaship(repo, "--json", "pull", `oci:${tmp.path}/d:${tag}`);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(JSON.parse(r.stdout).manifest, img.manifest);
    for (let i = 0; i < img.tars.length; i++) {
      assert.equal(sha256((await deltaship(repo, "layer", img.diffIds[i])).stdoutBytes), img.diffIds[i]);
    }
  }
  const inspect = JSON.parse((await deltaship(repo, "inspect", "d")).stdout);
  assert.equal(inspect.mediaType, "application/vnd.docker.distribution.manifest.v2+json");
});

Deno.test("layers already present are not fetched again; a second pull is a no-op", async () => {
  await using tmp = await tempDir();
  const shared = sampleTar("shared");
  await writeImage(`${tmp.path}/l`, { tag: "one", layers: [{ tar: shared }, { tar: sampleTar("x") }] });
  await writeImage(`${tmp.path}/l`, { tag: "two", layers: [{ tar: shared }, { tar: sampleTar("y") }] });
  const repo = `${tmp.path}/repo`;
  const one = JSON.parse((await deltaship(repo, "--json", "pull", `oci:${tmp.path}/l:one`)).stdout);
  assert.equal(one.layersFetched, 2);
  const two = JSON.parse((await deltaship(repo, "--json", "pull", `oci:${tmp.path}/l:two`)).stdout);
  assert.equal(two.layersFetched, 1);
  assert.equal(two.layersSkipped, 1);
  const again = await deltaship(repo, "pull", `oci:${tmp.path}/l:two`);
  assert.equal(again.code, 0);
  assert.match(again.stdout, /two: already present/);
  const againJson = JSON.parse((await deltaship(repo, "--json", "pull", `oci:${tmp.path}/l:two`)).stdout);
  assert.equal(againJson.alreadyPresent, true);
  assert.equal(againJson.bytesFetched, 0);
});

Deno.test("identical file contents are stored once across layers and images", async () => {
  await using tmp = await tempDir();
  const big = new Uint8Array(200_000).map((_, i) => (i * 31) & 0xff);
  await writeImage(`${tmp.path}/l`, {
    tag: "x",
    layers: [
      { tar: buildTar([{ path: "a/big", content: big }]) },
      { tar: buildTar([{ path: "b/big-copy", content: big }, { path: "c", content: "other" }]) },
    ],
  });
  const repo = `${tmp.path}/repo`;
  assert.equal((await deltaship(repo, "pull", `oci:${tmp.path}/l:x`)).code, 0);
  const image = JSON.parse((await deltaship(repo, "--json", "compute-id", "x")).stdout).id;
  const objects = objectFiles(repo).map(([hex]) => hex);
  assert.deepEqual(objects, [objectHex(big), objectHex("other"), image].sort(), "and the composefs image");
});

Deno.test("tag, untag and rm manage names; images lists them", async () => {
  await using tmp = await tempDir();
  const img = await writeImage(`${tmp.path}/l`, { tag: "v1", layers: [{ tar: sampleTar() }] });
  const repo = `${tmp.path}/repo`;
  await deltaship(repo, "pull", `oci:${tmp.path}/l:v1`);
  assert.equal((await deltaship(repo, "tag", "v1", "latest")).code, 0);
  let images = JSON.parse((await deltaship(repo, "--json", "images")).stdout);
  assert.deepEqual(images[0].tags, ["latest", "v1"]);
  assert.equal(images[0].layers, 1);
  assert.equal(images[0].size, img.tars[0].length);
  const table = (await deltaship(repo, "images")).stdout;
  assert.match(table, /^NAME\s+MANIFEST\s+CONFIG\s+SIZE\s+LAYERS$/m);
  assert.match(table, new RegExp(`^latest\\s+${img.manifest.slice(0, 19)}`, "m"));
  assert.equal((await deltaship(repo, "untag", "v1")).code, 0);
  images = JSON.parse((await deltaship(repo, "--json", "images")).stdout);
  assert.deepEqual(images[0].tags, ["latest"]);
  const missing = await deltaship(repo, "untag", "v1");
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /no tag "v1"/);
  assert.equal((await deltaship(repo, "rm", "latest")).code, 0);
  assert.deepEqual(JSON.parse((await deltaship(repo, "--json", "images")).stdout), []);
  const gone = await deltaship(repo, "inspect", "latest");
  assert.equal(gone.code, 1);
  assert.match(gone.stderr, /no image tagged "latest"/);
});
