import assert from "node:assert/strict";
import { sha256 } from "../src/util/digest.ts";
import { deltaship, tempDir } from "./helpers/cli.ts";
import {
  compress,
  putBlob,
  sampleTar,
  writeImage,
  writeIndex,
  writeVariant,
  type WrittenImage,
} from "./helpers/oci.ts";
import { buildTar } from "./helpers/tar.ts";
import { assertUnchangedAfterFailure, repoFiles } from "./helpers/failure.ts";

/**
 * Bad input must fail with exit 1 and one clear line, and leave the repository as
 * it was: same images and tags, fsck clean, no temporary files.
 */
async function expectFailure(repo: string, source: string, message: RegExp, ...extra: string[]): Promise<void> {
  const before = (await deltaship(repo, "--json", "images")).stdout;
  const files = repoFiles(repo, ["blobs", "images", "tags"]);
  const r = await deltaship(repo, "pull", ...extra, source, "bad");
  assert.equal(r.code, 1, `${source}: expected exit 1, got ${r.code}; stderr: ${r.stderr}`);
  assert.match(r.stderr, message);
  assert.equal(r.stderr.trim().split("\n").length, 1, `one line: ${r.stderr}`);
  assert.doesNotMatch(r.stderr, /^\s+at /m);
  assert.equal(r.stdout, "");
  assert.equal((await deltaship(repo, "--json", "images")).stdout, before);
  await assertUnchangedAfterFailure(repo, files);
  const fsck = await deltaship(repo, "fsck");
  assert.equal(fsck.code, 0, fsck.stdout);
  assert.deepEqual([...Deno.readDirSync(`${repo}/tmp`)], []);
}

async function setup(tmp: string): Promise<{ repo: string; dir: string; img: WrittenImage }> {
  const dir = `${tmp}/layout`;
  const repo = `${tmp}/repo`;
  await writeImage(dir, { tag: "good", layers: [{ tar: sampleTar("good") }] });
  assert.equal((await deltaship(repo, "pull", `oci:${dir}:good`)).code, 0);
  const img = await writeImage(dir, {
    tag: "base",
    layers: [{ tar: sampleTar("one") }, { tar: sampleTar("two"), compression: "none" }],
  });
  return { repo, dir, img };
}

Deno.test("bad input: truncated layer blob", async () => {
  await using tmp = await tempDir();
  const { repo, dir, img } = await setup(tmp.path);
  const path = `${dir}/blobs/sha256/${img.layers[0].digest.slice(7)}`;
  const bytes = await Deno.readFile(path);
  await Deno.writeFile(path, bytes.subarray(0, bytes.length - 40));
  await expectFailure(repo, `oci:${dir}:base`, /layer sha256:[0-9a-f]{64}: size mismatch: expected \d+ bytes, got \d+/);
});

Deno.test("bad input: layer blob whose bytes do not match its digest", async () => {
  await using tmp = await tempDir();
  const { repo, dir, img } = await setup(tmp.path);
  const path = `${dir}/blobs/sha256/${img.layers[1].digest.slice(7)}`; // uncompressed: still a valid tar
  const bytes = await Deno.readFile(path);
  bytes[1024 + 10] ^= 1;
  await Deno.writeFile(path, bytes);
  await expectFailure(
    repo,
    `oci:${dir}:base`,
    new RegExp(`layer ${img.layers[1].digest}: digest mismatch: expected ${img.layers[1].digest}, got sha256:`),
  );
});

Deno.test("bad input: descriptor with the wrong size", async () => {
  await using tmp = await tempDir();
  const { repo, dir, img } = await setup(tmp.path);
  await writeVariant(dir, img, "wrongsize", ({ manifest }) => {
    manifest.layers[0].size += 1;
  });
  await expectFailure(repo, `oci:${dir}:wrongsize`, /size mismatch: expected \d+ bytes, got \d+/);
});

Deno.test("bad input: malformed manifest and config JSON", async () => {
  await using tmp = await tempDir();
  const { repo, dir, img } = await setup(tmp.path);
  await writeVariant(
    dir,
    img,
    "badmanifest",
    () => ({ manifestBytes: new TextEncoder().encode('{"schemaVersion": 2,') }),
  );
  await expectFailure(repo, `oci:${dir}:badmanifest`, /manifest is not valid JSON/);
  await writeVariant(dir, img, "badconfig", () => ({ configBytes: new TextEncoder().encode("[not json") }));
  await expectFailure(repo, `oci:${dir}:badconfig`, /config sha256:[0-9a-f]{64} is not valid JSON/);
});

Deno.test("bad input: missing layer blob", async () => {
  await using tmp = await tempDir();
  const { repo, dir, img } = await setup(tmp.path);
  await Deno.remove(`${dir}/blobs/sha256/${img.layers[1].digest.slice(7)}`);
  await expectFailure(repo, `oci:${dir}:base`, new RegExp(`blob ${img.layers[1].digest} is missing`));
});

Deno.test("bad input: unknown and foreign layer media types", async () => {
  await using tmp = await tempDir();
  const { repo, dir, img } = await setup(tmp.path);
  await writeVariant(dir, img, "unknown", ({ manifest }) => {
    manifest.layers[1].mediaType = "application/x-mystery";
  });
  await expectFailure(repo, `oci:${dir}:unknown`, /unsupported media type "application\/x-mystery"/);
  await writeVariant(dir, img, "foreign", ({ manifest }) => {
    manifest.layers[0].mediaType = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";
  });
  await expectFailure(repo, `oci:${dir}:foreign`, /foreign layers are not distributed/);
});

Deno.test("bad input: diff_id count and value mismatches", async () => {
  await using tmp = await tempDir();
  const { repo, dir, img } = await setup(tmp.path);
  await writeVariant(dir, img, "count", ({ config }) => {
    config.rootfs.diff_ids.push(sha256("extra"));
  });
  await expectFailure(repo, `oci:${dir}:count`, /manifest has 2 layers but the config lists 3 diff_ids/);
  await writeVariant(dir, img, "value", ({ config }) => {
    config.rootfs.diff_ids[1] = sha256("not the layer");
  });
  await expectFailure(repo, `oci:${dir}:value`, /uncompressed layer \(diff_id\): digest mismatch/);
});

Deno.test("bad input: tar entries with ../ names", async () => {
  await using tmp = await tempDir();
  const { repo, dir } = await setup(tmp.path);
  for (const [tag, path] of [["dotdot", "../../etc/cron.d/evil"], ["absolute-dotdot", "/../etc/passwd"]]) {
    await writeImage(dir, {
      tag,
      layers: [{ tar: buildTar([{ path: "ok", content: "fine" }, { path, content: "x" }]) }],
    });
    await expectFailure(repo, `oci:${dir}:${tag}`, /unsafe path .*'\.\.'/);
  }
});

Deno.test("bad input: no matching platform, REF not found, not a layout, corrupt gzip", async () => {
  await using tmp = await tempDir();
  const { repo, dir, img } = await setup(tmp.path);
  await expectFailure(repo, `oci:${dir}:nosuchtag`, /has no tag nosuchtag; tags: good, base/);
  await expectFailure(repo, `oci:${dir}:sha256:${"0".repeat(64)}`, /has no manifest sha256:0{64}/);
  await expectFailure(repo, `oci:${tmp.path}/nowhere`, /is not an OCI image layout/);
  const arm = await writeImage(dir, {
    layers: [{ tar: sampleTar("arm") }],
    platform: { os: "linux", architecture: "arm64" },
    noIndexEntry: true,
  });
  await writeIndex(dir, "armonly", [{ image: arm, platform: { os: "linux", architecture: "arm64" } }]);
  await expectFailure(
    repo,
    `oci:${dir}:armonly`,
    /has no image for platform linux\/amd64; available: linux\/arm64 \(choose one with --platform\)/,
    "--platform",
    "linux/amd64",
  );
  const gz = compress(sampleTar("g"), "gzip");
  const broken = gz.slice(0, gz.length - 8); // cut the gzip trailer, then describe it honestly
  const digest = await putBlob(dir, broken);
  await writeVariant(dir, img, "corrupt", ({ manifest }) => {
    manifest.layers[0] = { ...manifest.layers[0], digest, size: broken.length };
  });
  await expectFailure(repo, `oci:${dir}:corrupt`, /corrupt or truncated gzip data/);
});
