/**
 * src/delta/artifact.ts on its own: the delta manifest deltaship builds reads
 * back as it was written, the reference fixtures read as their expected.json
 * says, every malformed delta manifest is refused with a FormatError naming
 * what is wrong, and the embedded target is fetched and checked.
 */
import assert from "node:assert/strict";
import { DELTA_ARTIFACT_TYPE, DeltaAnnotation, DeltaContent } from "../src/delta/annotations.ts";
import {
  buildDeltaManifest,
  type DeltaArtifact,
  type DeltaManifestSpec,
  EMPTY_CONFIG_BYTES,
  fetchDeltaTarget,
  isDeltaManifest,
  parseDeltaArtifact,
} from "../src/delta/artifact.ts";
import { DigestMismatchError, FormatError } from "../src/errors.ts";
import { type Descriptor, EMPTY_CONFIG, type Manifest, parseManifest } from "../src/oci/documents.ts";
import { MediaType } from "../src/oci/media_types.ts";
import { TARDIFF_MEDIA_TYPE } from "../src/tardiff/format.ts";
import { OciLayoutSource } from "../src/transport/oci.ts";
import { asDiffId, asManifestDigest, type ManifestDigest, sha256 } from "../src/util/digest.ts";
import { tempDir } from "./helpers/cli.ts";
import { CASES, expected, FIXTURES } from "./helpers/fixtures.ts";

// deno-lint-ignore no-explicit-any
type Json = any;

const GZIP = "application/vnd.oci.image.layer.v1.tar+gzip";

/** A digest standing for some named content. */
function d(name: string): string {
  return sha256(name);
}

/** A delta of three target layers: one reused, one rebuilt from a tar-diff, one shipped whole. */
const SPEC: DeltaManifestSpec = {
  target: { mediaType: MediaType.ociManifest, digest: d("target manifest"), size: 711 },
  targetConfig: { mediaType: MediaType.ociConfig, digest: d("target config"), size: 367 },
  source: d("source manifest"),
  sourceConfig: d("source config"),
  reused: [
    { digest: d("reused blob 1"), diffId: asDiffId(d("reused diff_id 1")) },
    { digest: d("reused blob 2"), diffId: asDiffId(d("reused diff_id 2")) },
  ],
  layers: [
    { mediaType: TARDIFF_MEDIA_TYPE, digest: d("tar-diff"), size: 514, to: d("target layer 3") },
    { mediaType: GZIP, digest: d("target layer 4"), size: 2269, to: d("target layer 4") },
  ],
};

const DELTA_DIGEST = asManifestDigest(d("the delta manifest"));
const WHAT = "delta oci:test (sha256:test)";

/** The delta manifest of SPEC, as a JSON object to edit. */
function deltaJson(spec = SPEC): Json {
  return JSON.parse(new TextDecoder().decode(buildDeltaManifest(spec)));
}

/** Parses a (possibly edited) delta manifest object as the pull does: bytes, manifest, artifact. */
function parseJsonDelta(doc: Json): DeltaArtifact {
  const manifest = parseManifest(new TextEncoder().encode(JSON.stringify(doc)), "delta manifest");
  return parseDeltaArtifact(manifest, DELTA_DIGEST, WHAT);
}

/** Asserts that `doc` is refused with a FormatError whose message names the delta and matches `message`. */
function assertRefused(doc: Json, message: RegExp): void {
  assert.throws(() => parseJsonDelta(doc), (e) => {
    assert.ok(e instanceof FormatError, `a FormatError, not ${e}`);
    assert.ok(e.message.startsWith(`${WHAT}`), `names the delta: ${e.message}`);
    assert.match(e.message, message);
    assert.equal(e.message.split("\n").length, 1, "one line");
    return true;
  });
}

Deno.test("artifact: buildDeltaManifest writes the oci-delta shape", () => {
  const doc = deltaJson();
  assert.equal(doc.schemaVersion, 2);
  assert.equal(doc.mediaType, MediaType.ociManifest);
  assert.equal(doc.artifactType, DELTA_ARTIFACT_TYPE);
  assert.deepEqual(doc.config, EMPTY_CONFIG);
  assert.equal(sha256(EMPTY_CONFIG_BYTES), EMPTY_CONFIG.digest, "the empty config's bytes are the blob it names");
  assert.equal(EMPTY_CONFIG_BYTES.length, EMPTY_CONFIG.size);
  assert.deepEqual(doc.subject, SPEC.target);
  assert.deepEqual(doc.annotations, {
    [DeltaAnnotation.target]: SPEC.target.digest,
    [DeltaAnnotation.source]: SPEC.source,
    [DeltaAnnotation.sourceConfig]: SPEC.sourceConfig,
    [DeltaAnnotation.reused]: JSON.stringify([d("reused blob 1"), d("reused blob 2")]),
    [DeltaAnnotation.reusedDiffId]: JSON.stringify([d("reused diff_id 1"), d("reused diff_id 2")]),
  });
  assert.deepEqual(JSON.parse(doc.annotations[DeltaAnnotation.reused]), SPEC.reused.map((r) => r.digest));
  assert.deepEqual(JSON.parse(doc.annotations[DeltaAnnotation.reusedDiffId]), SPEC.reused.map((r) => r.diffId));
  assert.deepEqual(doc.layers, [
    { ...SPEC.target, annotations: { [DeltaAnnotation.content]: DeltaContent.imageManifest } },
    { ...SPEC.targetConfig, annotations: { [DeltaAnnotation.content]: DeltaContent.imageConfig } },
    {
      mediaType: TARDIFF_MEDIA_TYPE,
      digest: d("tar-diff"),
      size: 514,
      annotations: { [DeltaAnnotation.content]: DeltaContent.imageLayer, [DeltaAnnotation.to]: d("target layer 3") },
    },
    {
      mediaType: GZIP,
      digest: d("target layer 4"),
      size: 2269,
      annotations: { [DeltaAnnotation.content]: DeltaContent.imageLayer, [DeltaAnnotation.to]: d("target layer 4") },
    },
  ]);
  // Nothing reused: no reused annotations at all (not empty arrays).
  const fresh = deltaJson({ ...SPEC, reused: [] });
  assert.equal(fresh.annotations[DeltaAnnotation.reused], undefined);
  assert.equal(fresh.annotations[DeltaAnnotation.reusedDiffId], undefined);
  assert.equal(Object.keys(fresh.annotations).length, 3);
});

Deno.test("artifact: parseDeltaArtifact reads back what buildDeltaManifest wrote", () => {
  const bytes = buildDeltaManifest(SPEC);
  const manifest = parseManifest(bytes, "delta manifest");
  assert.equal(isDeltaManifest(manifest), true);
  const a = parseDeltaArtifact(manifest, DELTA_DIGEST, WHAT);
  assert.equal(a.digest, DELTA_DIGEST);
  assert.equal(a.target, SPEC.target.digest);
  assert.equal(a.source, SPEC.source);
  assert.equal(a.sourceConfig, SPEC.sourceConfig);
  assert.deepEqual(strip(a.manifest), SPEC.target);
  assert.deepEqual(strip(a.config), SPEC.targetConfig);
  assert.deepEqual([...a.layers.keys()], [d("target layer 3"), d("target layer 4")], "by delta.to, in order");
  assert.deepEqual(strip(a.layers.get(d("target layer 3"))!), {
    mediaType: TARDIFF_MEDIA_TYPE,
    digest: d("tar-diff"),
    size: 514,
  });
  assert.deepEqual(strip(a.layers.get(d("target layer 4"))!), {
    mediaType: GZIP,
    digest: d("target layer 4"),
    size: 2269,
  });
  // The bytes are stable: building again gives the same digest.
  assert.equal(sha256(buildDeltaManifest(SPEC)), sha256(bytes));
});

/** A descriptor without its annotations. */
function strip(desc: Descriptor): Descriptor {
  const { annotations: _, ...rest } = desc;
  return rest;
}

Deno.test("artifact: isDeltaManifest is the artifactType, nothing else", () => {
  const delta = deltaJson();
  assert.equal(isDeltaManifest(delta as Manifest), true);
  assert.equal(isDeltaManifest({ ...delta, artifactType: undefined } as Manifest), false);
  assert.equal(isDeltaManifest({ ...delta, artifactType: "application/vnd.example.sbom" } as Manifest), false);
  // An image manifest with delta-like annotations is still an image.
  const image: Manifest = {
    schemaVersion: 2,
    mediaType: MediaType.ociManifest,
    config: { mediaType: MediaType.ociConfig, digest: d("c") as never, size: 2 },
    layers: [],
    annotations: delta.annotations,
  };
  assert.equal(isDeltaManifest(image), false);
  assert.throws(
    () => parseDeltaArtifact(image, DELTA_DIGEST, WHAT),
    (e) => e instanceof FormatError && e.message === `${WHAT} is not an oci-delta artifact`,
  );
});

/** A layout's only index entry, and its manifest parsed. */
async function layoutManifest(dir: string): Promise<{ digest: ManifestDigest; manifest: Manifest }> {
  const index = JSON.parse(await Deno.readTextFile(`${dir}/index.json`));
  assert.equal(index.manifests.length, 1);
  const digest = asManifestDigest(index.manifests[0].digest);
  const bytes = await Deno.readFile(`${dir}/blobs/sha256/${digest.slice(7)}`);
  assert.equal(sha256(bytes), digest);
  return { digest, manifest: parseManifest(bytes, `${dir} manifest`) };
}

for (const name of CASES) {
  Deno.test(`artifact: the reference delta ${name} reads as expected.json says`, async () => {
    const want = await expected(name);
    const delta = await layoutManifest(`${FIXTURES}${name}/delta`);
    const target = await layoutManifest(`${FIXTURES}${name}/new`);
    const source = await layoutManifest(`${FIXTURES}${name}/old`);
    assert.equal(delta.digest, want.delta_manifest);
    assert.equal(isDeltaManifest(delta.manifest), true);
    assert.equal(isDeltaManifest(target.manifest), false);

    const a = parseDeltaArtifact(delta.manifest, delta.digest, `delta ${name}`);
    assert.equal(a.digest, want.delta_manifest);
    assert.equal(a.target, want.new_manifest);
    assert.equal(a.manifest.digest, want.new_manifest);
    assert.equal(a.config.digest, want.new_config);
    assert.equal(a.source, source.digest);
    assert.equal(a.sourceConfig, source.manifest.config.digest);
    assert.equal(target.manifest.config.digest, want.new_config);
    // Every target layer is either shipped (keyed by its blob digest) or listed as reused, never both.
    const reused: string[] = JSON.parse(delta.manifest.annotations?.[DeltaAnnotation.reused] ?? "[]");
    const reusedDiffIds: string[] = JSON.parse(delta.manifest.annotations?.[DeltaAnnotation.reusedDiffId] ?? "[]");
    assert.equal(reused.length, reusedDiffIds.length);
    assert.ok(a.layers.size >= 1);
    const targetLayers = target.manifest.layers.map((l) => l.digest);
    for (const to of a.layers.keys()) assert.ok(targetLayers.includes(to), `${to} is a target layer`);
    assert.deepEqual(
      targetLayers.filter((l) => !a.layers.has(l)).sort(),
      [...reused].sort(),
      "the layers not shipped are the reused ones",
    );
    for (const [i, l] of target.manifest.layers.entries()) {
      const j = reused.indexOf(l.digest);
      if (j >= 0) assert.equal(reusedDiffIds[j], want.diff_ids[i], `reused layer ${i}'s diff_id`);
    }
  });
}

Deno.test("artifact: the reference fixtures ship tar-diffs and whole layers as expected", async () => {
  const basic = await layoutManifest(`${FIXTURES}basic/delta`);
  const a = parseDeltaArtifact(basic.manifest, basic.digest, "delta basic");
  const kinds = [...a.layers.entries()].map(([to, desc]) => desc.mediaType === TARDIFF_MEDIA_TYPE ? "diff" : to);
  // basic: one changed layer as a tar-diff, one new layer shipped as its own blob (delta.to is itself).
  assert.equal(kinds[0], "diff");
  assert.equal(kinds[1], a.layers.get(kinds[1])!.digest);
});

Deno.test("artifact: a delta without a source annotation is read; source is undefined", () => {
  const doc = deltaJson();
  delete doc.annotations[DeltaAnnotation.source];
  const a = parseJsonDelta(doc);
  assert.equal(a.source, undefined);
  assert.equal(a.sourceConfig, SPEC.sourceConfig);
});

Deno.test("artifact: a missing target or source-config annotation is refused", () => {
  for (const key of [DeltaAnnotation.target, DeltaAnnotation.sourceConfig]) {
    const doc = deltaJson();
    delete doc.annotations[key];
    assertRefused(doc, new RegExp(`has no ${key.replaceAll(".", "\\.")} annotation$`));
  }
  const none = deltaJson();
  delete none.annotations;
  assertRefused(none, /has no io\.github\.containers\.delta\.target annotation/);
});

Deno.test("artifact: a malformed digest annotation is refused, naming the annotation", () => {
  for (const key of [DeltaAnnotation.target, DeltaAnnotation.source, DeltaAnnotation.sourceConfig]) {
    for (const bad of ["sha256:xyz", "md5:0123", "", `sha256:${"A".repeat(64)}`]) {
      const doc = deltaJson();
      doc.annotations[key] = bad;
      assertRefused(doc, new RegExp(`annotation ${key.replaceAll(".", "\\.")} "${bad}" (is not a|has a malformed)`));
    }
  }
});

Deno.test("artifact: a layer entry with a malformed delta.to is refused, naming the entry", () => {
  const doc = deltaJson();
  doc.layers[2].annotations[DeltaAnnotation.to] = "sha256:nothex";
  assertRefused(doc, /layer entry 2 annotation io\.github\.containers\.delta\.to "sha256:nothex"/);
});

Deno.test("artifact: two embedded manifests or configs are refused", () => {
  const twoManifests = deltaJson();
  twoManifests.layers.push({ ...twoManifests.layers[0], digest: d("another manifest") });
  assertRefused(twoManifests, /embeds more than one target manifest$/);
  const twoConfigs = deltaJson();
  twoConfigs.layers.splice(2, 0, { ...twoConfigs.layers[1], digest: d("another config") });
  assertRefused(twoConfigs, /embeds more than one target config$/);
  // The same entry twice is still two.
  const same = deltaJson();
  same.layers.push(same.layers[1]);
  assertRefused(same, /embeds more than one target config$/);
});

Deno.test("artifact: no embedded manifest or no embedded config is refused", () => {
  const noManifest = deltaJson();
  noManifest.layers.splice(0, 1);
  assertRefused(noManifest, /embeds no target manifest$/);
  const noConfig = deltaJson();
  noConfig.layers.splice(1, 1);
  assertRefused(noConfig, /embeds no target config$/);
  // An entry whose content says manifest under another name does not count.
  const renamed = deltaJson();
  renamed.layers[0].annotations[DeltaAnnotation.content] = "Image-Manifest";
  assertRefused(renamed, /embeds no target manifest$/);
  const empty = deltaJson();
  empty.layers = [];
  assertRefused(empty, /embeds no target manifest$/);
});

Deno.test("artifact: a layer entry without delta.to is refused, naming the entry and its blob", () => {
  const doc = deltaJson();
  delete doc.layers[3].annotations[DeltaAnnotation.to];
  assertRefused(
    doc,
    new RegExp(`: layer entry 3 \\(${d("target layer 4")}\\) has no io\\.github\\.containers\\.delta\\.to annotation$`),
  );
});

Deno.test("artifact: a target layer shipped twice is refused", () => {
  const doc = deltaJson();
  doc.layers[3].annotations[DeltaAnnotation.to] = d("target layer 3");
  assertRefused(doc, new RegExp(`ships target layer ${d("target layer 3")} twice$`));
});

Deno.test("artifact: an embedded manifest other than the target annotation's is refused", () => {
  const doc = deltaJson();
  doc.layers[0].digest = d("some other manifest");
  assertRefused(
    doc,
    new RegExp(
      `: its embedded manifest is ${
        d("some other manifest")
      }, but io\\.github\\.containers\\.delta\\.target says ${SPEC.target.digest}$`,
    ),
  );
  const annotated = deltaJson();
  annotated.annotations[DeltaAnnotation.target] = d("some other manifest");
  assertRefused(annotated, /its embedded manifest is .*, but .* says sha256:/);
});

Deno.test("artifact: entries of unknown delta.content kinds are ignored; cosign-signature entries are listed as signatures", () => {
  const plain = parseJsonDelta(deltaJson());
  const doc = deltaJson();
  const extra = (content: string | undefined, name: string) => ({
    mediaType: "application/vnd.dev.cosign.simplesigning.v1+json",
    digest: d(name),
    size: 10,
    ...(content === undefined ? {} : { annotations: { [DeltaAnnotation.content]: content } }),
  });
  doc.layers.splice(1, 0, extra(DeltaContent.cosignSignature, "sig"));
  doc.layers.push(
    extra(DeltaContent.cosignSignatureContent, "sig content"),
    extra("some-future-kind", "future"),
    extra(undefined, "no content annotation"),
    // An unknown kind may carry delta.to (even a duplicate one): not a layer, so not refused.
    { ...extra("some-future-kind", "future 2"), annotations: { [DeltaAnnotation.to]: d("target layer 3") } },
  );
  const a = parseJsonDelta(doc);
  assert.deepEqual(a.signatures.map((s) => s.digest), [d("sig")]);
  assert.deepEqual({ ...a, signatures: [] }, plain);
});

/** Opens a fixture's delta layout and reads its artifact. */
async function openDelta(dir: string): Promise<{ source: OciLayoutSource; artifact: DeltaArtifact }> {
  const source = await OciLayoutSource.open(dir, undefined, false);
  const root = await source.root();
  const artifact = parseDeltaArtifact(
    parseManifest(root.bytes, "delta manifest"),
    asManifestDigest(root.digest),
    `delta ${source.description}`,
  );
  return { source, artifact };
}

Deno.test("artifact: fetchDeltaTarget reads the embedded target manifest and config byte for byte", async () => {
  for (const name of CASES) {
    const want = await expected(name);
    const { source, artifact } = await openDelta(`${FIXTURES}${name}/delta`);
    try {
      const t = await fetchDeltaTarget(source, artifact, `delta ${name}`);
      assert.equal(sha256(t.manifestBytes), want.new_manifest);
      assert.equal(sha256(t.configBytes), want.new_config);
      assert.deepEqual(
        t.manifestBytes,
        await Deno.readFile(`${FIXTURES}${name}/new/blobs/sha256/${want.new_manifest.slice(7)}`),
      );
      assert.deepEqual(
        t.configBytes,
        await Deno.readFile(`${FIXTURES}${name}/new/blobs/sha256/${want.new_config.slice(7)}`),
      );
      assert.equal(t.manifest.config.digest, want.new_config);
      assert.deepEqual(t.config.rootfs.diff_ids, want.diff_ids);
      assert.equal(t.mediaType, MediaType.ociManifest);
    } finally {
      await source.close();
    }
  }
});

Deno.test("artifact: fetchDeltaTarget refuses a target whose config is not the embedded config", async () => {
  const want = await expected("basic");
  const { source, artifact } = await openDelta(`${FIXTURES}basic/delta`);
  const other = d("another config");
  const lying: DeltaArtifact = { ...artifact, config: { ...artifact.config, digest: other } };
  await assert.rejects(
    () => fetchDeltaTarget(source, lying, "delta basic"),
    (e) =>
      e instanceof FormatError &&
      e.message === `delta basic: its embedded config is ${other}, but the target manifest names ${want.new_config}`,
  );
  await source.close();
});

Deno.test("artifact: fetchDeltaTarget refuses embedded documents that do not match their digests", async () => {
  await using tmp = await tempDir();
  const want = await expected("basic");
  const dir = `${tmp.path}/delta`;
  await Deno.mkdir(dir);
  await new Deno.Command("cp", { args: ["-r", `${FIXTURES}basic/delta/.`, dir] }).output();
  const { source, artifact } = await openDelta(dir);
  const config = `${dir}/blobs/sha256/${want.new_config.slice(7)}`;
  const bytes = await Deno.readFile(config);
  bytes[bytes.length - 2] ^= 1; // same length, other digest
  await Deno.writeFile(config, bytes);
  await assert.rejects(
    () => fetchDeltaTarget(source, artifact, "delta basic"),
    (e) => e instanceof DigestMismatchError && e.message.includes(want.new_config),
  );
  await source.close();
});

Deno.test("artifact: annotations that are not strings are refused as a FormatError (not a TypeError)", () => {
  // OCI annotations map strings to strings: the manifest parser refuses anything else, for every annotation.
  for (const bad of [5, null, { digest: SPEC.target.digest }]) {
    for (const key of [DeltaAnnotation.target, DeltaAnnotation.source, DeltaAnnotation.sourceConfig]) {
      const doc = deltaJson();
      doc.annotations[key] = bad;
      assert.throws(
        () => parseJsonDelta(doc),
        (e) => e instanceof FormatError && /has invalid annotations/.test(e.message),
      );
    }
    const layer = deltaJson();
    layer.layers[2].annotations[DeltaAnnotation.to] = bad;
    assert.throws(
      () => parseJsonDelta(layer),
      (e) => e instanceof FormatError && /layer 2 .*invalid annotations/.test(e.message),
    );
  }
});
