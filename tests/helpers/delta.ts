/**
 * Test helper: checks oci-delta artifacts two ways. {@link checkDelta} reads one
 * from a layout or archive and checks it against the repository that holds its
 * source image: every tar-diff is decoded with a strict reference decoder (format
 * rules included) and every original blob decompressed, and each must hash to
 * the target config's diff_id. {@link pullDelta} applies it with deltaship's own
 * engine in a fresh repository, as a client would.
 */
import assert from "node:assert/strict";
import zlib from "node:zlib";
import { DELTA_ARTIFACT_TYPE, DeltaAnnotation, DeltaContent } from "../../src/delta/annotations.ts";
import { type Descriptor, type Manifest, parseImageConfig, parseManifest } from "../../src/oci/documents.ts";
import { Repository } from "../../src/repo/repository.ts";
import { TARDIFF_MEDIA_TYPE } from "../../src/tardiff/format.ts";
import { openSource } from "../../src/transport/reference.ts";
import { resolveManifest } from "../../src/transport/source.ts";
import { asConfigDigest, sha256 } from "../../src/util/digest.ts";
import { readAll } from "../../src/util/streams.ts";
import { deltaship } from "./cli.ts";
import { type Decoded, expectTarDiff } from "./tardiff_decode.ts";

/** What a checked delta holds. */
export interface CheckedDelta {
  digest: string;
  manifest: Manifest;
  raw: Uint8Array;
  /** The embedded target manifest and config, and its diff_ids. */
  target: { manifest: Manifest; manifestBytes: Uint8Array; configBytes: Uint8Array; diffIds: string[] };
  /** Decoded tar-diffs by target layer digest. */
  decoded: Map<string, Decoded>;
  /** Layer entries by target layer digest. */
  layers: Map<string, Descriptor>;
}

function content(d: Descriptor): string | undefined {
  return d.annotations?.[DeltaAnnotation.content];
}

/** Checks the delta at `ref` against the repository at `repoPath`. */
export async function checkDelta(repoPath: string, ref: string): Promise<CheckedDelta> {
  const source = await openSource(ref);
  const repo = await Repository.open(repoPath, { create: false });
  try {
    const resolved = await resolveManifest(source, { os: "linux", architecture: "amd64" });
    const m = resolved.manifest;
    assert.equal(m.artifactType, DELTA_ARTIFACT_TYPE);
    const ann = m.annotations ?? {};
    const [old] = await repo.findByConfig(asConfigDigest(ann[DeltaAnnotation.sourceConfig]));
    assert.ok(old, `source image with config ${ann[DeltaAnnotation.sourceConfig]} is in the repository`);
    assert.equal(old.manifest, ann[DeltaAnnotation.source]);
    const manifestDesc = m.layers.find((l) => content(l) === DeltaContent.imageManifest)!;
    const configDesc = m.layers.find((l) => content(l) === DeltaContent.imageConfig)!;
    const manifestBytes = await source.document(manifestDesc);
    const configBytes = await source.document(configDesc);
    assert.equal(manifestDesc.digest, ann[DeltaAnnotation.target]);
    assert.deepEqual(m.subject, {
      mediaType: manifestDesc.mediaType,
      digest: manifestDesc.digest,
      size: manifestDesc.size,
    });
    const target = parseManifest(manifestBytes, "embedded manifest");
    const diffIds = parseImageConfig(configBytes, "embedded config").rootfs.diff_ids;
    const oldIds = old.layers.map((l) => l.diffId);
    const reused: string[] = JSON.parse(ann[DeltaAnnotation.reused] ?? "[]");
    const reusedIds: string[] = JSON.parse(ann[DeltaAnnotation.reusedDiffId] ?? "[]");
    const layers = new Map<string, Descriptor>();
    for (const l of m.layers.filter((l) => content(l) === DeltaContent.imageLayer)) {
      layers.set(l.annotations![DeltaAnnotation.to], l);
    }
    const decoded = new Map<string, Decoded>();
    for (const [i, desc] of target.layers.entries()) {
      const entry = layers.get(desc.digest);
      if (!entry) {
        assert.ok(oldIds.includes(diffIds[i]), `layer ${i} without an entry is one the source has`);
        assert.equal(reusedIds[reused.indexOf(desc.digest)], diffIds[i], `layer ${i} is listed as reused`);
        continue;
      }
      const blob = await readAll(await source.blob(entry), 1 << 30);
      assert.equal(sha256(blob), entry.digest);
      if (entry.mediaType === TARDIFF_MEDIA_TYPE) {
        decoded.set(desc.digest, await expectTarDiff(repo, oldIds, blob, diffIds[i]));
      } else {
        assert.equal(entry.digest, desc.digest, "an original blob is the target's own");
        const tar = entry.mediaType.endsWith("gzip")
          ? zlib.gunzipSync(blob)
          : entry.mediaType.endsWith("zstd")
          ? zlib.zstdDecompressSync(blob)
          : blob;
        assert.equal(sha256(new Uint8Array(tar)), diffIds[i]);
      }
    }
    return {
      digest: resolved.digest,
      manifest: m,
      raw: resolved.bytes,
      target: { manifest: target, manifestBytes, configBytes, diffIds },
      decoded,
      layers,
    };
  } finally {
    await source.close();
    await repo.close();
  }
}

/**
 * Applies a delta with deltaship's own engine, as a client would: into a fresh
 * repository at `repoPath`, pull `oldRef`, then pull `deltaRef`. The result must
 * be the target image itself (manifest digest `target`), every layer must
 * rebuild to its diff_id, and fsck must pass.
 */
export async function pullDelta(
  repoPath: string,
  oldRef: string,
  deltaRef: string,
  target: { manifest: string; diffIds: string[] },
): Promise<{ layersRebuilt: number; layersImported: number }> {
  const old = await deltaship(repoPath, "pull", oldRef);
  assert.equal(old.code, 0, old.stderr);
  const r = await deltaship(repoPath, "--json", "pull", deltaRef, "applied");
  assert.equal(r.code, 0, r.stderr);
  const result = JSON.parse(r.stdout);
  assert.equal(result.manifest, target.manifest, "the delta pull yields the target manifest");
  assert.ok(result.delta, "pulled as a delta");
  for (const diffId of target.diffIds) {
    const layer = await deltaship(repoPath, "layer", diffId);
    assert.equal(layer.code, 0, layer.stderr);
    assert.equal(sha256(layer.stdoutBytes), diffId);
  }
  const inspect = JSON.parse((await deltaship(repoPath, "--json", "inspect", "applied")).stdout);
  assert.equal(inspect.manifest, target.manifest);
  const fsck = await deltaship(repoPath, "fsck");
  assert.equal(fsck.code, 0, fsck.stdout + fsck.stderr);
  return { layersRebuilt: result.delta.layersRebuilt, layersImported: result.delta.layersImported };
}
