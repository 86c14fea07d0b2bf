/**
 * The old zstd:chunked writers' quirk (docs/design.md, "Deployed writers'
 * quirks"): containers/storage before 1.52 (skopeo 1.9 here) wrote streams that
 * stop at the tar's end-of-archive marker, without the zero blocks the tar had
 * after it, which the diff_id covers. Such a layer pulls, completed with exactly
 * the zero blocks that make it hash to its diff_id; a stream missing anything
 * else, or more than 10,240 bytes, or not zstd:chunked, is still refused.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { runCli, tempDir } from "./helpers/cli.ts";
import { unzstd, writeChunked } from "./helpers/chunked.ts";
import { expectCleanFailure } from "./helpers/failure.ts";
import { haveTools, run } from "./helpers/interop.ts";
import { addIndexEntry, compress, putBlob, writeImage } from "./helpers/oci.ts";
import { copyFromRegistry, startRegistry } from "./helpers/registry.ts";
import { buildTar } from "./helpers/tar.ts";

const sha = (b: Uint8Array) => `sha256:${createHash("sha256").update(b).digest("hex")}`;
const enc = new TextEncoder();

/** The entries of a layer and their end-of-archive marker. */
function entries(seed: string): Uint8Array {
  return buildTar([
    { path: "etc/", type: "dir" },
    { path: "etc/os-release", content: `ID=${seed}\n` },
    { path: "usr/bin/tool", content: new Uint8Array(3000).map((_, i) => (i * 31 + seed.length) & 0xff), mode: 0o755 },
  ]);
}

/** A layer as GNU tar writes them: entries, the end-of-archive marker, zeros up to a 10,240-byte record. */
function recordPaddedTar(seed: string): Uint8Array {
  const tar = entries(seed);
  const padded = new Uint8Array(Math.ceil(tar.length / 10240) * 10240);
  padded.set(tar);
  return padded;
}

/** The exported, uncompressed layers of an image, hashed. */
async function exportedDiffIds(repo: string, name: string, dir: string): Promise<string[]> {
  const r = await runCli(["--repo", repo, "-q", "export", name, `oci:${dir}:x`, "--compression", "none"]);
  assert.equal(r.code, 0, r.stderr);
  const index = JSON.parse(Deno.readTextFileSync(`${dir}/index.json`));
  const blob = (d: string) => Deno.readFileSync(`${dir}/blobs/sha256/${d.slice(7)}`);
  const m = JSON.parse(new TextDecoder().decode(blob(index.manifests[0].digest)));
  return m.layers.map((l: { digest: string }) => sha(blob(l.digest)));
}

Deno.test({
  name: "zstd:chunked quirk: a layer skopeo 1.9 wrote without the tar's last zero blocks pulls, its diff_id verified",
  ignore: !haveTools("zstd:chunked quirk", "skopeo", "docker-registry"),
  async fn() {
    await using tmp = await tempDir();
    const tars = [recordPaddedTar("a"), recordPaddedTar("bb")];
    const image = await writeImage(`${tmp.path}/src`, { tag: "v1", layers: tars.map((tar) => ({ tar })) });
    const skopeo = (dest: string, ...flags: string[]) =>
      run(
        "skopeo",
        "--insecure-policy",
        "copy",
        "--quiet",
        ...flags,
        "--dest-compress-format",
        "zstd:chunked",
        `oci:${tmp.path}/src:v1`,
        dest,
      );
    await skopeo(`oci:${tmp.path}/old:v1`);
    // The quirk is there: each stream is its tar cut short, and only zeros are missing.
    const index = JSON.parse(Deno.readTextFileSync(`${tmp.path}/old/index.json`));
    const blob = (d: string) => Deno.readFileSync(`${tmp.path}/old/blobs/sha256/${d.slice(7)}`);
    const manifest = JSON.parse(new TextDecoder().decode(blob(index.manifests[0].digest)));
    manifest.layers.forEach((l: { digest: string; annotations: Record<string, string> }, i: number) => {
      assert.ok(l.annotations["io.containers.zstd-chunked.manifest-checksum"], "skopeo 1.9's annotation names");
      const stream = unzstd(blob(l.digest));
      const missing = tars[i].length - stream.length;
      assert.ok(missing >= 1024 && missing <= 10240, `layer ${i}: ${missing} bytes missing`);
      assert.deepEqual(stream, tars[i].subarray(0, stream.length));
      assert.ok(tars[i].subarray(stream.length).every((b) => b === 0));
    });
    // From the layout and from a registry: stored, and rebuilt to the diff_ids.
    const repo = `${tmp.path}/repo`;
    const pull = await runCli(["--repo", repo, "--json", "pull", `oci:${tmp.path}/old:v1`, "old"]);
    assert.equal(pull.code, 0, pull.stderr);
    assert.equal(JSON.parse(pull.stdout).manifest, index.manifests[0].digest);
    assert.deepEqual(await exportedDiffIds(repo, "old", `${tmp.path}/out`), image.diffIds);
    assert.equal((await runCli(["--repo", repo, "fsck"])).code, 0);
    await using reg = await startRegistry();
    await skopeo(`docker://${reg.host}/quirk/app:v1`, "--dest-tls-verify=false");
    const fromRegistry = `${tmp.path}/repo2`;
    const r = await runCli(["--repo", fromRegistry, "-q", "pull", `docker://${reg.host}/quirk/app:v1`, "app"]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(await exportedDiffIds(fromRegistry, "app", `${tmp.path}/out2`), image.diffIds);
    await copyFromRegistry(`docker://${reg.host}/quirk/app:v1`, `oci:${tmp.path}/check:v1`); // skopeo agrees it is whole
  },
});

Deno.test("zstd:chunked quirk: a stream missing anything but whole zero blocks, more than 10,240 bytes, or not zstd:chunked is refused", async () => {
  await using tmp = await tempDir();
  const cut = entries("c"); // what an old writer's stream holds: up to the end-of-archive marker
  const tar = recordPaddedTar("c");
  assert.ok(tar.length - cut.length >= 1024);
  /** A layout whose one layer is the zstd `blob`, with `diffId`. */
  const layout = async (name: string, blob: Uint8Array, diffId: string) => {
    const dir = `${tmp.path}/${name}`;
    const config = enc.encode(
      JSON.stringify({ os: "linux", architecture: "amd64", rootfs: { type: "layers", diff_ids: [diffId] } }),
    );
    const manifest = enc.encode(JSON.stringify({
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      config: {
        mediaType: "application/vnd.oci.image.config.v1+json",
        digest: await putBlob(dir, config),
        size: config.length,
      },
      layers: [{
        mediaType: "application/vnd.oci.image.layer.v1.tar+zstd",
        digest: await putBlob(dir, blob),
        size: blob.length,
      }],
    }));
    await addIndexEntry(dir, {
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      digest: await putBlob(dir, manifest),
      size: manifest.length,
      annotations: { "org.opencontainers.image.ref.name": "v1" },
    });
    return `oci:${dir}:v1`;
  };
  const chunkedCut = (await writeChunked(cut)).blob;
  // The quirk itself, written by deltaship's writer from the cut tar: accepted, stored whole.
  const repo = `${tmp.path}/repo`;
  assert.equal(
    (await runCli(["--repo", repo, "-q", "pull", await layout("quirk", chunkedCut, sha(tar)), "ok"])).code,
    0,
  );
  assert.deepEqual(await exportedDiffIds(repo, "ok", `${tmp.path}/out`), [sha(tar)]);
  const changed = cut.slice();
  changed[1024] ^= 1; // a byte of etc/os-release
  const twoRecords = new Uint8Array(tar.length + 10240);
  twoRecords.set(tar);
  const cases: [string, Uint8Array, string][] = [
    ["content changed besides", (await writeChunked(changed)).blob, sha(tar)],
    ["more than 10,240 zero bytes missing", chunkedCut, sha(twoRecords)],
    ["plain zstd, no zstd:chunked footer", compress(cut, "zstd"), sha(tar)],
  ];
  const refusing = `${tmp.path}/refusing`; // made by the first pull (read-only commands make no repository)
  for (const [name, blob, diffId] of cases) {
    const source = await layout(name.replace(/[^a-z0-9]+/g, "-"), blob, diffId);
    // (Into a repository without the layer: one that has it would not fetch it again.)
    await expectCleanFailure(refusing, ["pull", source, "bad"], /uncompressed layer \(diff_id\): digest mismatch/);
  }
});
