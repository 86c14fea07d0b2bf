/**
 * src/ops/pull.ts, pull_image.ts and pull_steps.ts called directly (no CLI):
 * what a pull reports and stores, the skip of layers already present, the
 * dispatch of a delta to the delta path, and the shared steps on their own.
 */
import assert from "node:assert/strict";
import { FormatError, LimitError, NotFoundError, UnsupportedError } from "../src/errors.ts";
import type { Manifest } from "../src/oci/documents.ts";
import { applyDelta } from "../src/ops/delta_pull.ts";
import { pull } from "../src/ops/pull.ts";
import { commitPulled, layerLimits, missingLayers, type PullOptions } from "../src/ops/pull_steps.ts";
import { composefsImage } from "../src/repo/composefs_image.ts";
import { DEFAULT_MAX_LAYER_SIZE } from "../src/repo/layer_writer.ts";
import { layerTarChunks } from "../src/repo/layer_reader.ts";
import { Repository } from "../src/repo/repository.ts";
import { OciLayoutSource } from "../src/transport/oci.ts";
import { resolveManifest } from "../src/transport/source.ts";
import {
  asConfigDigest,
  asDiffId,
  asManifestDigest,
  type DiffId,
  type ManifestDigest,
  sha256,
} from "../src/util/digest.ts";
import type { ProgressSink } from "../src/util/progress.ts";
import { concat } from "../src/util/streams.ts";
import { tempDir } from "./helpers/cli.ts";
import { expected, FIXTURES } from "./helpers/fixtures.ts";
import { sampleTar, writeImage, writeVariant, type WrittenImage } from "./helpers/oci.ts";
import { buildTar } from "./helpers/tar.ts";

const PLATFORM = { os: "linux", architecture: "amd64" };

/** A progress sink that records every call as a line. */
class Recorder implements ProgressSink {
  readonly calls: string[] = [];
  start(id: string, label: string, total: number): void {
    this.calls.push(`start ${id} ${label} ${total}`);
  }
  advance(_id: string, _bytes: number): void {}
  finish(id: string, note?: string): void {
    this.calls.push(`finish ${id} ${note}`);
  }
}

/** Pulls `oci:DIR[:REF]` into `repo` with `options` (one job unless told). */
async function pullLayout(repo: Repository, dir: string, ref: string | undefined, options: Partial<PullOptions> = {}) {
  const source = await OciLayoutSource.open(dir, ref, false);
  try {
    return await pull(repo, source, { platform: PLATFORM, jobs: 1, ...options });
  } finally {
    await source.close();
  }
}

/** A stored layer's tar, as the repository rebuilds it. */
async function storedTar(repo: Repository, diffId: string): Promise<Uint8Array> {
  const parts = [];
  for await (const c of layerTarChunks(repo, asDiffId(diffId))) parts.push(c);
  return concat(parts);
}

/** Opens a fresh repository in `dir`; closed by `await using`. */
async function openRepo(dir: string): Promise<Repository & AsyncDisposable> {
  const repo = await Repository.open(`${dir}/repo`);
  return Object.assign(repo, { [Symbol.asyncDispose]: () => repo.close() });
}

/** Every file under the repository's images/ and tags/: what makes an image visible. */
function visible(repo: Repository): string[] {
  const out: string[] = [];
  const walk = (rel: string) => {
    for (const e of Deno.readDirSync(`${repo.root}/${rel}`)) {
      if (e.isDirectory) walk(`${rel}/${e.name}`);
      else out.push(`${rel}/${e.name} ${Deno.readTextFileSync(`${repo.root}/${rel}/${e.name}`).length}`);
    }
  };
  walk("images");
  walk("tags");
  return out.sort();
}

const sum = (img: WrittenImage) => img.layers.reduce((a, l) => a + l.size, 0);

Deno.test("pull ops: an image from an oci: layout: the result, the record, the tag, the layers", async () => {
  await using tmp = await tempDir();
  const layout = `${tmp.path}/layout`;
  const img = await writeImage(layout, {
    tag: "v1",
    layers: [{ tar: sampleTar("a") }, { tar: sampleTar("b"), compression: "zstd" }, {
      tar: sampleTar("c"),
      compression: "none",
    }],
  });
  await using repo = await openRepo(tmp.path);
  const progress = new Recorder();
  const r = await pullLayout(repo, layout, "v1", { progress, jobs: 2 });
  assert.deepEqual(r, {
    name: "v1",
    manifest: img.manifest,
    config: img.config,
    alreadyPresent: false,
    layersFetched: 3,
    layersSkipped: 0,
    bytesFetched: sum(img),
  });
  assert.equal(r.delta, undefined);
  assert.equal(await repo.tags.read("v1"), img.manifest);
  const record = await repo.readImage(asManifestDigest(img.manifest));
  assert.equal(record.manifest, img.manifest);
  assert.equal(record.config, img.config);
  assert.equal(record.mediaType, img.mediaType);
  assert.deepEqual(record.layers, img.tars.map((t) => ({ diffId: sha256(t), tarSize: t.length })));
  assert.deepEqual(await repo.readBlob(img.manifest), img.manifestBytes);
  assert.deepEqual(await repo.readBlob(img.config), img.configBytes);
  for (const [i, tar] of img.tars.entries()) assert.deepEqual(await storedTar(repo, img.diffIds[i]), tar);
  // Each layer shown from start (its compressed size) to finish.
  for (const [i, l] of img.layers.entries()) {
    assert.ok(progress.calls.includes(`start ${l.digest} layer ${i + 1}/3 ${l.size}`), progress.calls.join("\n"));
    assert.ok(progress.calls.includes(`finish ${l.digest} done`), progress.calls.join("\n"));
  }
});

Deno.test("pull ops: pulling the same image again fetches nothing and only updates the tag", async () => {
  await using tmp = await tempDir();
  const layout = `${tmp.path}/layout`;
  const img = await writeImage(layout, { tag: "v1", layers: [{ tar: sampleTar("a") }, { tar: sampleTar("b") }] });
  await using repo = await openRepo(tmp.path);
  await pullLayout(repo, layout, "v1");
  const before = visible(repo);
  const progress = new Recorder();
  const again = await pullLayout(repo, layout, "v1", { progress });
  assert.deepEqual(again, {
    name: "v1",
    manifest: img.manifest,
    config: img.config,
    alreadyPresent: true,
    layersFetched: 0,
    layersSkipped: 2,
    bytesFetched: 0,
  });
  assert.deepEqual(progress.calls, [], "no layer is even looked at");
  assert.deepEqual(visible(repo), before);
  // Under another name: only a tag more.
  const named = await pullLayout(repo, layout, img.manifest, { name: "other" });
  assert.equal(named.alreadyPresent, true);
  assert.equal(named.name, "other");
  assert.equal(await repo.tags.read("other"), img.manifest);
  assert.equal(visible(repo).length, before.length + 1);
});

Deno.test("pull ops: a layer the repository holds (from another image) is skipped and reported", async () => {
  await using tmp = await tempDir();
  const shared = buildTar([{ path: "shared/lib.so", content: new Uint8Array(20_000).map((_, i) => i * 13) }]);
  const first = await writeImage(`${tmp.path}/one`, { tag: "one", layers: [{ tar: shared }, { tar: sampleTar("a") }] });
  const second = await writeImage(`${tmp.path}/two`, {
    tag: "two",
    layers: [{ tar: shared }, { tar: sampleTar("b") }],
  });
  assert.equal(first.layers[0].digest, second.layers[0].digest);
  await using repo = await openRepo(tmp.path);
  await pullLayout(repo, `${tmp.path}/one`, "one");
  const progress = new Recorder();
  const r = await pullLayout(repo, `${tmp.path}/two`, undefined, { progress });
  assert.equal(r.name, "two", "the layout entry's own tag");
  assert.equal(r.manifest, second.manifest);
  assert.equal(r.alreadyPresent, false);
  assert.equal(r.layersFetched, 1);
  assert.equal(r.layersSkipped, 1);
  assert.equal(r.bytesFetched, second.layers[1].size, "only the layer it lacked");
  const sharedDigest = second.layers[0].digest;
  assert.deepEqual(progress.calls.filter((c) => c.includes(sharedDigest)), [
    `start ${sharedDigest} layer 1/2 0`,
    `finish ${sharedDigest} already present`,
  ]);
  assert.deepEqual(await storedTar(repo, second.diffIds[1]), sampleTar("b"));
  const record = await repo.readImage(asManifestDigest(second.manifest));
  assert.deepEqual(record.layers.map((l) => l.diffId), second.diffIds);
});

Deno.test("pull ops: a delta is dispatched to the delta path and yields its target image", async () => {
  await using tmp = await tempDir();
  const want = await expected("basic");
  await using repo = await openRepo(tmp.path);
  const old = await pullLayout(repo, `${FIXTURES}basic/old`, "old");
  assert.equal(old.delta, undefined);
  const deltaDoc = JSON.parse(
    await Deno.readTextFile(`${FIXTURES}basic/delta/blobs/sha256/${want.delta_manifest.slice(7)}`),
  );
  const shipped = deltaDoc.layers
    .filter((l: { annotations: Record<string, string> }) => l.annotations["io.github.containers.delta.to"])
    .reduce((a: number, l: { size: number }) => a + l.size, 0);
  const newManifest = JSON.parse(
    await Deno.readTextFile(`${FIXTURES}basic/new/blobs/sha256/${want.new_manifest.slice(7)}`),
  );
  const r = await pullLayout(repo, `${FIXTURES}basic/delta`, undefined, { name: "new" });
  assert.deepEqual(r, {
    name: "new",
    manifest: want.new_manifest,
    config: want.new_config,
    alreadyPresent: false,
    layersFetched: 2,
    layersSkipped: 1,
    bytesFetched: shipped,
    delta: {
      manifest: want.delta_manifest,
      source: old.manifest,
      layersRebuilt: 1,
      layersImported: 1,
      imageSize: newManifest.layers.reduce((a: number, l: { size: number }) => a + l.size, 0),
      signed: false,
    },
  });
  assert.equal(await repo.tags.read("new"), want.new_manifest);
  const record = await repo.readImage(asManifestDigest(want.new_manifest));
  assert.deepEqual(record.layers.map((l) => l.diffId), want.diff_ids);
  for (const diffId of want.diff_ids) assert.equal(sha256(await storedTar(repo, diffId)), diffId);
  assert.equal(
    sha256(await repo.readBlob(want.new_manifest)),
    want.new_manifest,
    "the target manifest byte for byte",
  );
  // Applying it again: already present, under the delta result too.
  const again = await pullLayout(repo, `${FIXTURES}basic/delta`, undefined);
  assert.equal(again.alreadyPresent, true);
  assert.equal(again.manifest, want.new_manifest);
  assert.equal(again.delta?.manifest, want.delta_manifest);
  assert.equal(again.bytesFetched, 0);
});

Deno.test("pull ops: a delta's target is stored or tagged only when it is the image asked for", async () => {
  await using tmp = await tempDir();
  const want = await expected("basic");
  await using repo = await openRepo(tmp.path);
  const old = await pullLayout(repo, `${FIXTURES}basic/old`, "old");
  const source = await OciLayoutSource.open(`${FIXTURES}basic/delta`, undefined, false);
  try {
    const resolved = await resolveManifest(source, PLATFORM);
    const asked = asManifestDigest(sha256("the image the pull was asked for"));
    const options = { platform: PLATFORM, jobs: 1 };
    const refusal = (name: string) => (e: unknown) =>
      e instanceof FormatError &&
      e.message === `refusing to store image ${want.new_manifest} as ${name}: the pull asked for ${asked}`;
    // Not stored yet: every layer is rebuilt, and then the commit refuses.
    const before = visible(repo);
    await assert.rejects(applyDelta(repo, source, resolved, { ...options, name: "new" }, asked), refusal("new"));
    assert.deepEqual(visible(repo), before);
    assert.equal(await repo.hasImage(asManifestDigest(want.new_manifest)), false);
    // Stored: a pull asked for another image does not tag it either.
    assert.equal((await applyDelta(repo, source, resolved, { ...options, name: "new" })).manifest, want.new_manifest);
    await assert.rejects(applyDelta(repo, source, resolved, { ...options, name: "old" }, asked), refusal("old"));
    assert.equal(await repo.tags.read("old"), old.manifest);
  } finally {
    await source.close();
  }
});

Deno.test("pull ops: the layer size limit applies; a refused pull makes nothing visible", async () => {
  await using tmp = await tempDir();
  const layout = `${tmp.path}/layout`;
  const img = await writeImage(layout, { tag: "v1", layers: [{ tar: sampleTar("a") }] });
  await using repo = await openRepo(tmp.path);
  const before = visible(repo);
  await assert.rejects(
    () => pullLayout(repo, layout, "v1", { maxLayerSize: 1024 }),
    (e) => e instanceof LimitError,
  );
  assert.deepEqual(visible(repo), before);
  assert.equal(await repo.hasImage(asManifestDigest(img.manifest)), false);
  assert.equal(await repo.hasLayer(asDiffId(img.diffIds[0])), false);
  // Exactly the tar's size is accepted.
  const r = await pullLayout(repo, layout, "v1", { maxLayerSize: img.tars[0].length });
  assert.equal(r.layersFetched, 1);
});

Deno.test("pull ops: a manifest whose config is not an image config is refused before fetching", async () => {
  await using tmp = await tempDir();
  const layout = `${tmp.path}/layout`;
  const img = await writeImage(layout, { tag: "v1", layers: [{ tar: sampleTar("a") }] });
  const artifact = await writeVariant(layout, img, "sbom", ({ manifest }) => {
    manifest.artifactType = "application/vnd.example.sbom";
    manifest.config.mediaType = "application/vnd.oci.empty.v1+json";
  });
  await using repo = await openRepo(tmp.path);
  const before = visible(repo);
  await assert.rejects(
    () => pullLayout(repo, layout, "sbom"),
    (e) =>
      e instanceof UnsupportedError && e.message.includes(artifact) &&
      /is not a container image: its config has media type application\/vnd\.oci\.empty\.v1\+json \(artifact type application\/vnd\.example\.sbom\)/
        .test(e.message),
  );
  assert.deepEqual(visible(repo), before);
  assert.equal(await repo.hasLayer(asDiffId(img.diffIds[0])), false);
});

/** A manifest of layers with these blob digests (missingLayers reads only layers). */
function manifestOf(blobs: string[]): Manifest {
  return {
    schemaVersion: 2,
    config: {
      mediaType: "application/vnd.oci.image.config.v1+json",
      digest: asConfigDigest(sha256("config")),
      size: 1,
    },
    layers: blobs.map((digest) => ({ mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", digest, size: 10 })),
  };
}

Deno.test("pull ops: missingLayers: one per distinct missing diff_id; present ones reported once", async () => {
  await using tmp = await tempDir();
  const stored = await writeImage(`${tmp.path}/layout`, { tag: "v1", layers: [{ tar: sampleTar("x") }] });
  await using repo = await openRepo(tmp.path);
  await pullLayout(repo, `${tmp.path}/layout`, "v1");
  const have = asDiffId(stored.diffIds[0]);
  const lackA = asDiffId(sha256("missing a"));
  const lackB = asDiffId(sha256("missing b"));
  const diffIds: DiffId[] = [lackA, have, lackA, lackB, have, lackB];
  const blobs = ["blob a", "blob have", "blob a again", "blob b", "blob have again", "blob b again"].map((s) =>
    sha256(s)
  );
  const manifest = manifestOf(blobs);
  const progress = new Recorder();
  const todo = await missingLayers(repo, manifest, diffIds, progress);
  assert.deepEqual(todo, [
    { index: 0, desc: manifest.layers[0], diffId: lackA },
    { index: 3, desc: manifest.layers[3], diffId: lackB },
  ]);
  assert.deepEqual(progress.calls, [`start ${blobs[1]} layer 2/6 0`, `finish ${blobs[1]} already present`]);
  // Nothing missing: nothing to do, every distinct layer reported.
  const all = new Recorder();
  assert.deepEqual(await missingLayers(repo, manifestOf([blobs[1], blobs[4]]), [have, have], all), []);
  assert.deepEqual(all.calls, [`start ${blobs[1]} layer 1/2 0`, `finish ${blobs[1]} already present`]);
  assert.deepEqual(await missingLayers(repo, manifestOf([]), [], all), []);
});

Deno.test("pull ops: commitPulled records layer sizes from the repository, stores the composefs image and writes the tag", async () => {
  await using tmp = await tempDir();
  const layout = `${tmp.path}/layout`;
  const img = await writeImage(layout, { tag: "v1", layers: [{ tar: sampleTar("a") }, { tar: sampleTar("bb") }] });
  await using repo = await openRepo(tmp.path);
  await pullLayout(repo, layout, "v1");
  // Another image over the same layers (a different config), committed directly.
  const config = new TextEncoder().encode(JSON.stringify({
    ...JSON.parse(new TextDecoder().decode(img.configBytes)),
    config: { Cmd: ["/bin/other"] },
  }));
  const manifestDoc = JSON.parse(new TextDecoder().decode(img.manifestBytes));
  manifestDoc.config.digest = sha256(config);
  manifestDoc.config.size = config.length;
  const manifestBytes = new TextEncoder().encode(JSON.stringify(manifestDoc));
  const manifest: ManifestDigest = asManifestDigest(sha256(manifestBytes));
  const diffIds = [...img.diffIds, img.diffIds[0]].map(asDiffId); // a layer may appear twice
  const before = Date.now();
  await commitPulled(repo, {
    requested: manifest,
    manifest,
    manifestBytes,
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    config: asConfigDigest(sha256(config)),
    configBytes: config,
    diffIds,
    name: "variant",
  });
  const record = await repo.readImage(manifest);
  assert.deepEqual({ ...record, created: "" }, {
    manifest,
    config: sha256(config),
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    layers: diffIds.map((diffId) => ({
      diffId,
      tarSize: img.tars[img.diffIds.indexOf(diffId)].length,
    })),
    created: "",
    composefs: (await composefsImage(repo, diffIds)).id,
  });
  assert.ok(repo.objects.has(record.composefs!), "the composefs image is stored as an object");
  const created = Date.parse(record.created);
  assert.ok(created >= before - 1000 && created <= Date.now() + 1000, `created ${record.created} is now`);
  assert.equal(await repo.tags.read("variant"), manifest);
  assert.deepEqual(await repo.readBlob(manifest), manifestBytes);
  assert.deepEqual(await repo.readBlob(sha256(config)), config);
  // Without a name: stored, no tag.
  const before2 = (await repo.tags.list()).length;
  const bytes3 = new TextEncoder().encode(JSON.stringify({ ...manifestDoc, annotations: { x: "y" } }));
  await commitPulled(repo, {
    requested: asManifestDigest(sha256(bytes3)),
    manifest: asManifestDigest(sha256(bytes3)),
    manifestBytes: bytes3,
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    config: asConfigDigest(sha256(config)),
    configBytes: config,
    diffIds,
  });
  assert.equal(await repo.hasImage(asManifestDigest(sha256(bytes3))), true);
  assert.equal((await repo.tags.list()).length, before2);
});

Deno.test("pull ops: commitPulled refuses an image whose layer is not stored, making nothing visible", async () => {
  await using tmp = await tempDir();
  await using repo = await openRepo(tmp.path);
  const before = visible(repo);
  const manifestBytes = new TextEncoder().encode("{}");
  const configBytes = new TextEncoder().encode("{ }");
  const missing = asDiffId(sha256("not stored"));
  await assert.rejects(
    () =>
      commitPulled(repo, {
        requested: asManifestDigest(sha256(manifestBytes)),
        manifest: asManifestDigest(sha256(manifestBytes)),
        manifestBytes,
        mediaType: "application/vnd.oci.image.manifest.v1+json",
        config: asConfigDigest(sha256(configBytes)),
        configBytes,
        diffIds: [missing],
        name: "broken",
      }),
    (e) => e instanceof NotFoundError && e.message === `layer ${missing} is not in the repository`,
  );
  assert.deepEqual(visible(repo), before);
  assert.equal(await repo.hasBlob(sha256(manifestBytes)), false);
});

Deno.test("pull ops: layerLimits defaults to DEFAULT_MAX_LAYER_SIZE and takes the option", () => {
  assert.deepEqual(layerLimits({}), { maxLayerSize: DEFAULT_MAX_LAYER_SIZE });
  assert.deepEqual(layerLimits({ maxLayerSize: undefined }), { maxLayerSize: DEFAULT_MAX_LAYER_SIZE });
  assert.equal(DEFAULT_MAX_LAYER_SIZE, 64 * 2 ** 30);
  assert.deepEqual(layerLimits({ maxLayerSize: 12345 }), { maxLayerSize: 12345 });
  assert.deepEqual(layerLimits({ maxLayerSize: 0 }), { maxLayerSize: 0 }, "0 is a limit, not a default");
});
