/**
 * src/oci/layout_writer.ts on its own: writing `oci:DIR` (new, existing layout,
 * empty directory) and `oci-archive:FILE`; nothing visible before commit, abort
 * leaving every destination as it was, blobs checked against an expected digest
 * and stored once, and the index merge as a pure function.
 */
import assert from "node:assert/strict";
import { DigestMismatchError, FormatError, InvalidArgumentError, NotFoundError } from "../src/errors.ts";
import { type Descriptor, type Index, REF_NAME_ANNOTATION } from "../src/oci/documents.ts";
import { type LayoutWriter, mergeIndex, openLayoutWriter } from "../src/oci/layout_writer.ts";
import { MediaType } from "../src/oci/media_types.ts";
import { resolveManifest } from "../src/transport/source.ts";
import { OciLayoutSource } from "../src/transport/oci.ts";
import { sha256 } from "../src/util/digest.ts";
import { tempDir } from "./helpers/cli.ts";
import { haveTools, run } from "./helpers/interop.ts";
import { compress, sampleTar, writeImage } from "./helpers/oci.ts";

const enc = new TextEncoder();
const PLATFORM = { os: "linux", architecture: "amd64" };

/** An image held in memory: its blobs and the manifest's descriptor. */
interface Image {
  layer: Uint8Array;
  config: Uint8Array;
  manifest: Uint8Array;
  desc: Descriptor;
}

/** A one-layer image (gzip layer of sampleTar(seed)). */
function image(seed: string): Image {
  const tar = sampleTar(seed);
  const layer = compress(tar, "gzip");
  const config = enc.encode(JSON.stringify({
    ...PLATFORM,
    config: { Cmd: ["/bin/sh"] },
    rootfs: { type: "layers", diff_ids: [sha256(tar)] },
  }));
  const manifest = enc.encode(JSON.stringify({
    schemaVersion: 2,
    mediaType: MediaType.ociManifest,
    config: { mediaType: MediaType.ociConfig, digest: sha256(config), size: config.length },
    layers: [{ mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", digest: sha256(layer), size: layer.length }],
  }));
  return {
    layer,
    config,
    manifest,
    desc: { mediaType: MediaType.ociManifest, digest: sha256(manifest), size: manifest.length },
  };
}

/** Chunks of `bytes`, as an async stream gives them. */
async function* chunked(bytes: Uint8Array, size = 1000): AsyncGenerator<Uint8Array> {
  for (let i = 0; i < bytes.length; i += size) {
    await Promise.resolve();
    yield bytes.subarray(i, i + size);
  }
}

/** Writes the image's blobs (the layer streamed, the rest whole, each checked) and lists it under `tag`. */
async function putImage(w: LayoutWriter, img: Image, tag?: string): Promise<void> {
  const layer = await w.putBlob(chunked(img.layer));
  assert.deepEqual(layer, { digest: sha256(img.layer), size: img.layer.length });
  assert.deepEqual(await w.putBlob(img.config, sha256(img.config)), {
    digest: sha256(img.config),
    size: img.config.length,
  });
  assert.equal((await w.putBlob([img.manifest])).digest, img.desc.digest);
  w.addManifest(img.desc, tag);
}

/** Every file and directory under `dir` (hidden ones too), with sizes and content digests: to compare states. */
function tree(dir: string): string[] {
  const out: string[] = [];
  const walk = (rel: string) => {
    for (const e of Deno.readDirSync(`${dir}${rel}`)) {
      const path = `${rel}/${e.name}`;
      if (e.isDirectory) {
        out.push(`${path}/`);
        walk(path);
      } else {
        out.push(`${path} ${sha256(Deno.readFileSync(`${dir}${path}`))}`);
      }
    }
  };
  walk("");
  return out.sort();
}

/** The names of the blobs under a layout. */
function blobNames(dir: string): string[] {
  return [...Deno.readDirSync(`${dir}/blobs/sha256`)].map((e) => `sha256:${e.name}`).sort();
}

function readIndex(dir: string): Index {
  return JSON.parse(Deno.readTextFileSync(`${dir}/index.json`));
}

/** Index entries as `tag digest` (`- digest` untagged), in order. */
function entries(index: Index): string[] {
  return index.manifests.map((m) => `${m.annotations?.[REF_NAME_ANNOTATION] ?? "-"} ${m.digest}`);
}

/** Pulls `ref` through OciLayoutSource and checks every blob of the image against `img`. */
async function readBack(path: string, ref: string, img: Image, archive = false): Promise<void> {
  const source = await OciLayoutSource.open(path, ref, archive);
  try {
    const resolved = await resolveManifest(source, PLATFORM);
    assert.equal(resolved.digest, img.desc.digest);
    assert.deepEqual(resolved.bytes, img.manifest);
    assert.deepEqual(await source.document(resolved.manifest.config), img.config);
    const blob = new Uint8Array(await new Response(await source.blob(resolved.manifest.layers[0])).arrayBuffer());
    assert.deepEqual(blob, img.layer);
  } finally {
    await source.close();
  }
}

Deno.test("layout writer: a new oci:DIR appears complete at commit, not before", async () => {
  await using tmp = await tempDir();
  const dir = `${tmp.path}/out`;
  const a = image("a");
  const before = tree(tmp.path);
  const w = await openLayoutWriter({ transport: "oci", path: dir });
  assert.equal(w.description, `oci:${dir}`);
  await putImage(w, a, "v1");
  await assert.rejects(() => Deno.lstat(dir), Deno.errors.NotFound, "nothing at DIR before commit");
  await w.commit();
  assert.deepEqual(
    tree(dir),
    [
      "/blobs/",
      "/blobs/sha256/",
      ...[a.layer, a.config, a.manifest].map((b) => `/blobs/sha256/${sha256(b).slice(7)} ${sha256(b)}`),
      `/index.json ${sha256(Deno.readFileSync(`${dir}/index.json`))}`,
      `/oci-layout ${sha256(enc.encode(JSON.stringify({ imageLayoutVersion: "1.0.0" })))}`,
    ].sort(),
  );
  const index = readIndex(dir);
  assert.equal(index.schemaVersion, 2);
  assert.equal(index.mediaType, MediaType.ociIndex);
  assert.deepEqual(index.manifests, [{ ...a.desc, annotations: { [REF_NAME_ANNOTATION]: "v1" } }]);
  assert.deepEqual(JSON.parse(Deno.readTextFileSync(`${dir}/oci-layout`)), { imageLayoutVersion: "1.0.0" });
  // Nothing of the writer is left beside DIR: only DIR is new.
  assert.deepEqual(tree(tmp.path).filter((p) => !p.startsWith("/out/") || p === "/out/"), [...before, "/out/"].sort());
  await readBack(dir, "v1", a);
  await w.abort(); // after commit: a no-op
  assert.ok(Deno.statSync(`${dir}/index.json`).isFile);
  await assert.rejects(() => w.commit(), /already finished/);
});

Deno.test("layout writer: skopeo reads a layout and an archive the writer made", async () => {
  if (!haveTools("layout writer skopeo", "skopeo")) return;
  await using tmp = await tempDir();
  const a = image("a");
  for (const [transport, path] of [["oci", `${tmp.path}/dir`], ["oci-archive", `${tmp.path}/img.tar`]] as const) {
    const w = await openLayoutWriter({ transport, path });
    await putImage(w, a, "v1");
    await w.commit();
    const out = JSON.parse(await run("skopeo", "inspect", "--raw", `${transport}:${path}:v1`));
    assert.deepEqual(out, JSON.parse(new TextDecoder().decode(a.manifest)));
    const info = JSON.parse(await run("skopeo", "inspect", `${transport}:${path}:v1`));
    assert.equal(info.Digest, a.desc.digest);
    assert.deepEqual(info.Layers, [sha256(a.layer)]);
  }
});

Deno.test("layout writer: adding to an existing layout keeps other tags and replaces the same tag", async () => {
  await using tmp = await tempDir();
  const dir = `${tmp.path}/layout`;
  // An existing layout (written by the test helper): tag "keep", tag "v1", and an untagged entry of image b.
  const keep = await writeImage(dir, { tag: "keep", layers: [{ tar: sampleTar("k") }] });
  const old = await writeImage(dir, { tag: "v1", layers: [{ tar: sampleTar("o") }] });
  const a = image("a");
  const b = image("b");
  const w0 = await openLayoutWriter({ transport: "oci", path: dir });
  await putImage(w0, b);
  await w0.commit();
  assert.deepEqual(entries(readIndex(dir)), [`keep ${keep.manifest}`, `v1 ${old.manifest}`, `- ${b.desc.digest}`]);
  const oldBlobs = blobNames(dir);

  const before = tree(dir);
  const w = await openLayoutWriter({ transport: "oci", path: dir });
  await putImage(w, a, "v1"); // same tag as an existing entry: replaced
  await putImage(w, b); // untagged, same digest as an untagged entry: replaced, not doubled
  assert.deepEqual(tree(dir).filter((p) => !p.includes(".deltaship-staging-")), before, "nothing visible yet");
  await w.commit();
  // Replaced entries go to the end, in the order they were added.
  assert.deepEqual(entries(readIndex(dir)), [`keep ${keep.manifest}`, `v1 ${a.desc.digest}`, `- ${b.desc.digest}`]);
  assert.deepEqual(blobNames(dir), [...new Set([...oldBlobs, ...[a.layer, a.config, a.manifest].map(sha256)])].sort());
  assert.equal(tree(dir).filter((p) => p.includes(".deltaship")).length, 0, "no staging left");
  await readBack(dir, "v1", a);
  await readBack(dir, "keep", {
    layer: Deno.readFileSync(`${dir}/blobs/sha256/${keep.layers[0].digest.slice(7)}`),
    config: keep.configBytes,
    manifest: keep.manifestBytes,
    desc: { mediaType: keep.mediaType, digest: keep.manifest, size: keep.manifestSize },
  });
});

Deno.test("layout writer: an existing empty directory becomes a layout", async () => {
  await using tmp = await tempDir();
  const dir = `${tmp.path}/empty`;
  await Deno.mkdir(dir);
  const a = image("a");
  const w = await openLayoutWriter({ transport: "oci", path: dir });
  await putImage(w, a, "v1");
  assert.deepEqual(tree(dir).filter((p) => !p.includes(".deltaship-staging-")), [], "nothing visible yet");
  await w.commit();
  assert.deepEqual(tree(dir).filter((p) => !/^\/blobs\/sha256\/./.test(p)), [
    "/blobs/",
    "/blobs/sha256/",
    `/index.json ${sha256(Deno.readFileSync(`${dir}/index.json`))}`,
    `/oci-layout ${sha256(enc.encode(JSON.stringify({ imageLayoutVersion: "1.0.0" })))}`,
  ]);
  assert.deepEqual(blobNames(dir), [a.layer, a.config, a.manifest].map(sha256).sort());
  await readBack(dir, "v1", a);
});

Deno.test("layout writer: abort leaves a new, an empty and an existing oci:DIR, and an archive, as they were", async () => {
  await using tmp = await tempDir();
  const a = image("a");
  const b = image("b");
  const existing = `${tmp.path}/existing`;
  await writeImage(existing, { tag: "v1", layers: [{ tar: sampleTar("o") }] });
  await Deno.mkdir(`${tmp.path}/empty`);
  await Deno.writeFile(`${tmp.path}/old.tar`, enc.encode("an earlier archive"));
  const dests = [
    { transport: "oci", path: `${tmp.path}/new` },
    { transport: "oci", path: `${tmp.path}/empty` },
    { transport: "oci", path: existing },
    { transport: "oci-archive", path: `${tmp.path}/new.tar` },
    { transport: "oci-archive", path: `${tmp.path}/old.tar` },
  ] as const;
  const before = tree(tmp.path);
  for (const dest of dests) {
    const w = await openLayoutWriter(dest);
    await putImage(w, a, "v1");
    await putImage(w, b, "v2");
    await w.abort();
    assert.deepEqual(tree(tmp.path), before, `${dest.transport}:${dest.path} as it was`);
    await w.abort(); // twice: still fine
    await assert.rejects(() => w.putBlob(a.config), /already finished/);
  }
  // A writer aborted before writing anything at all.
  for (const dest of dests) await (await openLayoutWriter(dest)).abort();
  assert.deepEqual(tree(tmp.path), before);
});

Deno.test("layout writer: putBlob with an expected digest refuses other bytes and keeps nothing", async () => {
  await using tmp = await tempDir();
  const a = image("a");
  await Deno.mkdir(`${tmp.path}/empty`);
  const dests = [
    { transport: "oci", path: `${tmp.path}/new` },
    { transport: "oci", path: `${tmp.path}/empty` },
    { transport: "oci-archive", path: `${tmp.path}/a.tar` },
  ] as const;
  for (const dest of dests) {
    const w = await openLayoutWriter(dest);
    const wrong = sha256("something else");
    await assert.rejects(
      () => w.putBlob(chunked(a.layer), wrong),
      (e) =>
        e instanceof DigestMismatchError && e.expected === wrong && e.actual === sha256(a.layer) &&
        e.message.includes(`${dest.transport}:${dest.path}`),
    );
    // A stream that fails midway is not kept either.
    await assert.rejects(() =>
      w.putBlob(
        (async function* () {
          yield a.config.subarray(0, 10);
          throw new Error("the source broke");
        })(),
      ), /the source broke/);
    await putImage(w, a, "v1");
    await w.commit();
    const files = dest.transport === "oci" ? blobNames(dest.path) : await archiveBlobs(dest.path);
    assert.deepEqual(files, [a.layer, a.config, a.manifest].map(sha256).sort(), `${dest.path}: only the good blobs`);
    if (dest.transport === "oci") {
      assert.deepEqual(
        tree(dest.path).filter((p) => p.includes(".tmp-") || p.includes(".deltaship")),
        [],
        "no temporary file left",
      );
    }
    await readBack(dest.path, "v1", a, dest.transport === "oci-archive");
  }
});

/** The blob members of an archive as digests, checked with tar(1) to be a valid tar. */
async function archiveBlobs(file: string): Promise<string[]> {
  const names = (await run("tar", "-tf", file)).trim().split("\n");
  return names.filter((n) => /^blobs\/sha256\/./.test(n)).map((n) => `sha256:${n.slice(13)}`).sort();
}

Deno.test("layout writer: the same blob twice is stored once (directory and archive)", async () => {
  await using tmp = await tempDir();
  const a = image("a");
  const b = image("b");
  // b shares nothing with a; a second image c shares a's layer.
  const shared = { ...b, layer: a.layer };
  for (const transport of ["oci", "oci-archive"] as const) {
    const path = `${tmp.path}/${transport}`;
    const w = await openLayoutWriter({ transport, path });
    await putImage(w, a, "a");
    await putImage(w, a, "a-again");
    assert.deepEqual(await w.putBlob(shared.layer), { digest: sha256(a.layer), size: a.layer.length });
    await putImage(w, b, "b");
    await w.commit();
    const want = [a.layer, a.config, a.manifest, b.layer, b.config, b.manifest].map(sha256).sort();
    if (transport === "oci") {
      assert.deepEqual(blobNames(path), want);
    } else {
      const names = (await run("tar", "-tf", path)).trim().split("\n");
      assert.deepEqual(
        names.filter((n) => n.startsWith("blobs/sha256/") && n.length > 13).length,
        want.length,
        "once each",
      );
      assert.deepEqual(await archiveBlobs(path), want);
    }
    const index = readIndex(transport === "oci" ? path : await extract(path, `${tmp.path}/x-${transport}`));
    assert.deepEqual(entries(index), [`a ${a.desc.digest}`, `a-again ${a.desc.digest}`, `b ${b.desc.digest}`]);
    await readBack(path, "a-again", a, transport === "oci-archive");
    await readBack(path, "b", b, transport === "oci-archive");
  }
  // A blob already in an existing layout is not written again (the file is the same one).
  const dir = `${tmp.path}/oci`;
  const inode = Deno.statSync(`${dir}/blobs/sha256/${sha256(a.layer).slice(7)}`).ino;
  const w = await openLayoutWriter({ transport: "oci", path: dir });
  await putImage(w, a, "a-third");
  await w.commit();
  assert.equal(Deno.statSync(`${dir}/blobs/sha256/${sha256(a.layer).slice(7)}`).ino, inode);
  assert.equal(blobNames(dir).length, 6);
});

/** Extracts an archive with tar(1) (which must accept it) into `dir`; returns `dir`. */
async function extract(file: string, dir: string): Promise<string> {
  await Deno.mkdir(dir, { recursive: true });
  await run("tar", "-xf", file, "-C", dir);
  return dir;
}

Deno.test("layout writer: an archive is a valid tar: oci-layout first, blobs, index.json last", async () => {
  await using tmp = await tempDir();
  const a = image("a");
  const b = image("b");
  const file = `${tmp.path}/img.tar`;
  await Deno.writeFile(file, enc.encode("replaced, not merged"));
  const w = await openLayoutWriter({ transport: "oci-archive", path: file });
  assert.equal(w.description, `oci-archive:${file}`);
  // Blobs written concurrently: members are still written one at a time.
  await Promise.all([putImage(w, a, "a"), putImage(w, b, "b"), w.putBlob(chunked(a.layer, 7))]);
  assert.deepEqual(await Deno.readFile(file), enc.encode("replaced, not merged"), "nothing visible before commit");
  await w.commit();
  const names = (await run("tar", "-tf", file)).trim().split("\n");
  assert.equal(names[0], "oci-layout");
  assert.equal(names.at(-1), "index.json", "index.json last");
  assert.deepEqual(names.slice(1, 3), ["blobs/", "blobs/sha256/"]);
  assert.equal(names.length, 3 + 6 + 1);
  // Every member's bytes are the blob its name says.
  const x = await extract(file, `${tmp.path}/x`);
  for (const digest of blobNames(x)) {
    assert.equal(sha256(Deno.readFileSync(`${x}/blobs/sha256/${digest.slice(7)}`)), digest);
  }
  assert.deepEqual(entries(readIndex(x)).sort(), [`a ${a.desc.digest}`, `b ${b.desc.digest}`]);
  // The size is whole 512-byte blocks, and nothing but the archive is left beside it.
  assert.equal((await Deno.stat(file)).size % 512, 0);
  assert.deepEqual([...Deno.readDirSync(tmp.path)].map((e) => e.name).sort(), ["img.tar", "x"]);
  await readBack(file, "a", a, true);
});

Deno.test("layout writer: destinations it cannot write are refused, leaving them as they were", async () => {
  await using tmp = await tempDir();
  await Deno.mkdir(`${tmp.path}/other`);
  await Deno.writeTextFile(`${tmp.path}/other/notes.txt`, "not a layout");
  await Deno.writeTextFile(`${tmp.path}/file`, "a file");
  await Deno.mkdir(`${tmp.path}/damaged`);
  await Deno.writeTextFile(`${tmp.path}/damaged/oci-layout`, JSON.stringify({ imageLayoutVersion: "1.0.0" }));
  await Deno.writeTextFile(`${tmp.path}/damaged/index.json`, "{not json");
  const before = tree(tmp.path);
  await assert.rejects(
    () => openLayoutWriter({ transport: "oci", path: `${tmp.path}/other` }),
    (e) => e instanceof InvalidArgumentError && /is a non-empty directory that is not an OCI layout/.test(e.message),
  );
  await assert.rejects(
    () => openLayoutWriter({ transport: "oci", path: `${tmp.path}/file` }),
    (e) => e instanceof InvalidArgumentError && e.message === `oci:${tmp.path}/file exists and is not a directory`,
  );
  await assert.rejects(() => openLayoutWriter({ transport: "oci", path: `${tmp.path}/damaged` }), FormatError);
  await assert.rejects(
    () => openLayoutWriter({ transport: "oci-archive", path: `${tmp.path}/other` }),
    (e) => e instanceof InvalidArgumentError && /is a directory; give a file name/.test(e.message),
  );
  await assert.rejects(
    () => openLayoutWriter({ transport: "oci-archive", path: `${tmp.path}/missing/img.tar` }),
    (e) => e instanceof NotFoundError && /the directory it would be written in does not exist/.test(e.message),
  );
  assert.deepEqual(tree(tmp.path), before);
});

const desc = (name: string, extra: Partial<Descriptor> = {}): Descriptor => ({
  mediaType: MediaType.ociManifest,
  digest: sha256(name),
  size: name.length,
  ...extra,
});
const tagged = (d: Descriptor, tag: string): Descriptor => ({
  ...d,
  annotations: { ...d.annotations, [REF_NAME_ANNOTATION]: tag },
});

Deno.test("mergeIndex: a new index lists the entries, tagged as asked", () => {
  const out = JSON.parse(
    new TextDecoder().decode(mergeIndex(undefined, [{ desc: desc("a"), tag: "v1" }, { desc: desc("b") }])),
  );
  assert.deepEqual(out, {
    schemaVersion: 2,
    mediaType: MediaType.ociIndex,
    manifests: [tagged(desc("a"), "v1"), desc("b")],
  });
  assert.deepEqual(JSON.parse(new TextDecoder().decode(mergeIndex(undefined, []))), {
    schemaVersion: 2,
    mediaType: MediaType.ociIndex,
    manifests: [],
  });
});

Deno.test("mergeIndex: same tag replaced, untagged same digest replaced, everything else kept", () => {
  const platform = { os: "linux", architecture: "arm64" };
  const existing: Index = {
    schemaVersion: 2,
    mediaType: MediaType.ociIndex,
    manifests: [
      tagged(desc("old v1"), "v1"),
      tagged(desc("a"), "a-tag"), // tagged, same digest as a new untagged entry: kept
      desc("a"), // untagged, same digest: replaced
      desc("other", { platform }), // untagged, other digest: kept as it is
      tagged(desc("keep"), "keep"),
    ],
    annotations: { "org.example.note": "kept" },
  };
  const frozen = JSON.stringify(existing);
  const out: Index = JSON.parse(new TextDecoder().decode(mergeIndex(existing, [
    { desc: desc("new v1", { annotations: { "org.example.x": "y" } }), tag: "v1" },
    { desc: desc("a") },
    { desc: desc("twice"), tag: "t" },
    { desc: desc("twice again"), tag: "t" }, // the later of two entries with one tag wins
  ])));
  assert.equal(JSON.stringify(existing), frozen, "the existing index is not changed");
  assert.deepEqual(out, {
    schemaVersion: 2,
    mediaType: MediaType.ociIndex,
    manifests: [
      tagged(desc("a"), "a-tag"),
      desc("other", { platform }),
      tagged(desc("keep"), "keep"),
      { ...desc("new v1"), annotations: { "org.example.x": "y", [REF_NAME_ANNOTATION]: "v1" } },
      desc("a"),
      tagged(desc("twice again"), "t"),
    ],
    annotations: { "org.example.note": "kept" },
  });
  // A Docker manifest list's entries are kept under an OCI index.
  const docker: Index = { schemaVersion: 2, mediaType: MediaType.dockerManifestList, manifests: [desc("d")] };
  const merged: Index = JSON.parse(new TextDecoder().decode(mergeIndex(docker, [{ desc: desc("e"), tag: "e" }])));
  assert.equal(merged.mediaType, MediaType.ociIndex);
  assert.deepEqual(merged.manifests, [desc("d"), tagged(desc("e"), "e")]);
  assert.equal("annotations" in merged, false);
});

Deno.test("layout writer: a layout without index.json (a writer killed at its end) is written to", async () => {
  await using tmp = await tempDir();
  const dir = `${tmp.path}/partial`;
  const stray = image("stray");
  await Deno.mkdir(`${dir}/blobs/sha256`, { recursive: true });
  await Deno.writeTextFile(`${dir}/oci-layout`, JSON.stringify({ imageLayoutVersion: "1.0.0" }));
  await Deno.writeFile(`${dir}/blobs/sha256/${sha256(stray.layer).slice(7)}`, stray.layer);
  const before = tree(dir);
  const a = image("a");
  const aborted = await openLayoutWriter({ transport: "oci", path: dir });
  await putImage(aborted, a, "v1");
  await aborted.abort();
  assert.deepEqual(tree(dir), before);
  const w = await openLayoutWriter({ transport: "oci", path: dir });
  await putImage(w, a, "v1");
  await w.commit();
  assert.deepEqual(entries(readIndex(dir)), [`v1 ${a.desc.digest}`]);
  assert.deepEqual(blobNames(dir), [stray.layer, a.layer, a.config, a.manifest].map(sha256).sort());
  assert.equal(Deno.readTextFileSync(`${dir}/oci-layout`), JSON.stringify({ imageLayoutVersion: "1.0.0" }));
  await readBack(dir, "v1", a);
});
