/**
 * Decompression bombs and the layer size limit: a layer whose uncompressed size
 * passes --max-layer-size (or DELTASHIP_MAX_LAYER_SIZE) stops with one line naming
 * the layer and the limit, and nothing of it stays in the repository (its objects
 * were staged, never visible). The same holds for layers rebuilt from deltas.
 */
import assert from "node:assert/strict";
import zlib from "node:zlib";
import { deltaship, tempDir } from "./helpers/cli.ts";
import { expectCleanFailure, repoFiles } from "./helpers/failure.ts";
import { putBlob, sampleTar, writeImage } from "./helpers/oci.ts";
import { headerBlock } from "./helpers/tar.ts";
import { FIXTURES } from "./helpers/fixtures.ts";
import { sha256 } from "../src/util/digest.ts";
import { createHash } from "node:crypto";

const MiB = 1 << 20;

/**
 * A gzip layer of one file of `size` zero bytes, made of concatenated gzip members
 * (one member of 16 MiB of zeros, repeated) so that it never exists uncompressed
 * here. Returns the blob and its diff_id.
 */
function zeroBomb(size: number): { blob: Uint8Array; diffId: string } {
  const chunk = 16 * MiB;
  assert.equal(size % chunk, 0);
  const header = headerBlock({ name: "bomb.bin", mode: 0o644, size, typeflag: "0" });
  const tail = new Uint8Array(1024);
  const zeros = new Uint8Array(chunk);
  const diff = createHash("sha256").update(header);
  for (let i = 0; i < size / chunk; i++) diff.update(zeros);
  diff.update(tail);
  const member = new Uint8Array(zlib.gzipSync(zeros, { level: 9 }));
  const parts = [new Uint8Array(zlib.gzipSync(header)), ...Array(size / chunk).fill(member), zlib.gzipSync(tail)];
  const blob = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of parts) {
    blob.set(p, o);
    o += p.length;
  }
  return { blob, diffId: `sha256:${diff.digest("hex")}` };
}

/** A layout tagged `bomb` whose one layer is `bomb`. */
async function writeBombImage(dir: string, bomb: { blob: Uint8Array; diffId: string }): Promise<string> {
  const layer = await putBlob(dir, bomb.blob);
  const config = new TextEncoder().encode(JSON.stringify({
    architecture: "amd64",
    os: "linux",
    rootfs: { type: "layers", diff_ids: [bomb.diffId] },
  }));
  const manifest = new TextEncoder().encode(JSON.stringify({
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: sha256(config), size: config.length },
    layers: [{ mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", digest: layer, size: bomb.blob.length }],
  }));
  await putBlob(dir, config);
  const digest = await putBlob(dir, manifest);
  await Deno.writeTextFile(`${dir}/oci-layout`, JSON.stringify({ imageLayoutVersion: "1.0.0" }));
  await Deno.writeTextFile(
    `${dir}/index.json`,
    JSON.stringify({
      schemaVersion: 2,
      manifests: [{
        mediaType: "application/vnd.oci.image.manifest.v1+json",
        digest,
        size: manifest.length,
        annotations: { "org.opencontainers.image.ref.name": "bomb" },
      }],
    }),
  );
  return layer;
}

Deno.test("layer limit: a gzip bomb stops at --max-layer-size and leaves no object or layer", async () => {
  await using tmp = await tempDir();
  const repo = `${tmp.path}/repo`;
  await writeImage(`${tmp.path}/ok`, { tag: "ok", layers: [{ tar: sampleTar("ok") }] });
  assert.equal((await deltaship(repo, "pull", `oci:${tmp.path}/ok:ok`)).code, 0);
  const layer = await writeBombImage(`${tmp.path}/bomb`, zeroBomb(256 * MiB));
  const before = repoFiles(repo);
  await expectCleanFailure(
    repo,
    ["pull", "--max-layer-size", "64MiB", `oci:${tmp.path}/bomb:bomb`],
    new RegExp(`layer ${layer}: uncompressed layer is larger than the limit of 64 MiB; nothing was stored`),
  );
  assert.deepEqual(repoFiles(repo), before, "objects or layers of the stopped layer were left behind");
  await expectCleanFailure(
    repo,
    ["pull", `oci:${tmp.path}/bomb:bomb`],
    /larger than the limit of 100 MiB/,
    { DELTASHIP_MAX_LAYER_SIZE: "100 MiB" },
  );
  assert.deepEqual(repoFiles(repo), before);
  // Within the limit the same layer is fine (and the option beats the environment).
  const r = await deltaship(repo, "--json", "pull", "--max-layer-size", "1GiB", `oci:${tmp.path}/bomb:bomb`);
  assert.equal(r.code, 0, r.stderr);
});

Deno.test("layer limit: a layer rebuilt from a delta is held to the limit too", async () => {
  await using tmp = await tempDir();
  const repo = `${tmp.path}/repo`;
  assert.equal((await deltaship(repo, "pull", `oci:${FIXTURES}/basic/old:old`)).code, 0);
  const r = await expectCleanFailure(
    repo,
    ["pull", "--max-layer-size", "2KiB", `oci:${FIXTURES}/basic/delta`, "new"],
    /layer sha256:[0-9a-f]{64}( \(tar-diff sha256:[0-9a-f]{64}\))?: uncompressed layer is larger than the limit of 2 KiB/,
  );
  assert.doesNotMatch(r.stderr, /internal error/);
  const ok = await deltaship(repo, "pull", `oci:${FIXTURES}/basic/delta`, "new");
  assert.equal(ok.code, 0, ok.stderr);
});

Deno.test("layer limit: sizes are bytes or KiB/MiB/GiB/TiB; anything else is a usage error", async () => {
  await using tmp = await tempDir();
  for (const bad of ["12XB", "-5", "0", "1e9", "0x10", "GiB", "5 5MiB"]) {
    const r = await deltaship(`${tmp.path}/repo`, "pull", "--max-layer-size", bad, `oci:${tmp.path}/none`);
    assert.equal(r.code, 2, `${bad}: ${r.stderr}`);
    assert.match(r.stderr, /--max-layer-size must be a size in bytes or with KiB, MiB, GiB or TiB/);
  }
  const env = await deltaship(`${tmp.path}/repo`, "pull", `oci:${tmp.path}/none`);
  assert.equal(env.code, 1); // no such layout: the default limit parses
});
