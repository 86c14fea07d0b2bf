/**
 * Test helper: writes OCI image layouts (and archives of them) from in-memory
 * layer tars, so tests can describe images in a few readable lines.
 */
import zlib from "node:zlib";
import { sha256 } from "../../src/util/digest.ts";
import type { Descriptor, Platform } from "../../src/oci/documents.ts";
import { buildTar, type TarSpec } from "./tar.ts";

const enc = new TextEncoder();

/** One layer: its uncompressed tar and how to compress it. */
export interface LayerSpec {
  tar: Uint8Array;
  compression?: "gzip" | "zstd" | "none";
  /** Compression level (default: zlib's). */
  level?: number;
  /** Media type to write instead of the one the compression implies. */
  mediaType?: string;
}

/** An image to write. */
export interface ImageSpec {
  /** Tag in index.json; omit to add the manifest untagged (or not at all with `noIndexEntry`). */
  tag?: string;
  layers: LayerSpec[];
  platform?: Platform;
  /** Docker schema 2 media types instead of OCI. */
  docker?: boolean;
  /** Extra fields merged into the config. */
  config?: Record<string, unknown>;
  /** Write the blobs only, not an index.json entry (for images reached through an index). */
  noIndexEntry?: boolean;
}

/** What was written, for assertions. */
export interface WrittenImage {
  manifest: string;
  manifestSize: number;
  manifestBytes: Uint8Array;
  mediaType: string;
  config: string;
  configBytes: Uint8Array;
  diffIds: string[];
  layers: Descriptor[];
  tars: Uint8Array[];
}

/** Compresses bytes. */
export function compress(bytes: Uint8Array, how: "gzip" | "zstd" | "none", level?: number): Uint8Array {
  if (how === "gzip") return new Uint8Array(zlib.gzipSync(bytes, level === undefined ? {} : { level }));
  if (how === "zstd") {
    const params = level === undefined ? {} : { [zlib.constants.ZSTD_c_compressionLevel]: level };
    return new Uint8Array(zlib.zstdCompressSync(bytes, { params }));
  }
  return bytes;
}

/** Writes a blob into a layout; returns its digest. */
export async function putBlob(dir: string, bytes: Uint8Array): Promise<string> {
  const digest = sha256(bytes);
  await Deno.mkdir(`${dir}/blobs/sha256`, { recursive: true });
  await Deno.writeFile(`${dir}/blobs/sha256/${digest.slice(7)}`, bytes);
  return digest;
}

/** Adds a descriptor to the layout's index.json (creating the layout if needed). */
export async function addIndexEntry(dir: string, desc: Descriptor): Promise<void> {
  await Deno.mkdir(dir, { recursive: true });
  await Deno.writeTextFile(`${dir}/oci-layout`, JSON.stringify({ imageLayoutVersion: "1.0.0" }));
  let index = { schemaVersion: 2, mediaType: "application/vnd.oci.image.index.v1+json", manifests: [] as Descriptor[] };
  try {
    index = JSON.parse(await Deno.readTextFile(`${dir}/index.json`));
  } catch { /* new layout */ }
  index.manifests.push(desc);
  await Deno.writeTextFile(`${dir}/index.json`, JSON.stringify(index));
}

/**
 * Adds an image tagged `tag` to the layout `dir` whose one layer is `layer`, a
 * blob already in the layout, of the tar whose digest is `diffId`.
 */
export async function addOneLayerImage(dir: string, tag: string, layer: Descriptor, diffId: string): Promise<void> {
  const configBytes = enc.encode(JSON.stringify({
    architecture: "amd64",
    os: "linux",
    rootfs: { type: "layers", diff_ids: [diffId] },
  }));
  const config = await putBlob(dir, configBytes);
  const manifestBytes = enc.encode(JSON.stringify({
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: config, size: configBytes.length },
    layers: [layer],
  }));
  await addIndexEntry(dir, {
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    digest: await putBlob(dir, manifestBytes),
    size: manifestBytes.length,
    annotations: { "org.opencontainers.image.ref.name": tag },
  });
}

const LAYER_TYPES = {
  gzip: "application/vnd.oci.image.layer.v1.tar+gzip",
  zstd: "application/vnd.oci.image.layer.v1.tar+zstd",
  none: "application/vnd.oci.image.layer.v1.tar",
};

/**
 * Stores `configBytes` and an OCI manifest naming it and `layers` in the layout at `dir`,
 * and tags the manifest `tag` in its index.
 */
export async function putOciManifest(
  dir: string,
  tag: string,
  configBytes: Uint8Array,
  layers: Descriptor[],
): Promise<{ manifest: string; manifestBytes: Uint8Array; mediaType: string; config: string }> {
  const config = await putBlob(dir, configBytes);
  const mediaType = "application/vnd.oci.image.manifest.v1+json";
  const manifestBytes = enc.encode(JSON.stringify({
    schemaVersion: 2,
    mediaType,
    config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: config, size: configBytes.length },
    layers,
  }));
  const manifest = await putBlob(dir, manifestBytes);
  await addIndexEntry(dir, {
    mediaType,
    digest: manifest,
    size: manifestBytes.length,
    annotations: { "org.opencontainers.image.ref.name": tag },
  });
  return { manifest, manifestBytes, mediaType, config };
}

/** Writes an image into the layout at `dir`. */
export async function writeImage(dir: string, spec: ImageSpec): Promise<WrittenImage> {
  await Deno.mkdir(dir, { recursive: true });
  await Deno.writeTextFile(`${dir}/oci-layout`, JSON.stringify({ imageLayoutVersion: "1.0.0" }));
  const layers: Descriptor[] = [];
  const diffIds: string[] = [];
  for (const l of spec.layers) {
    const how = l.compression ?? "gzip";
    const blob = compress(l.tar, how, l.level);
    diffIds.push(sha256(l.tar));
    const mediaType = l.mediaType ??
      (spec.docker ? "application/vnd.docker.image.rootfs.diff.tar.gzip" : LAYER_TYPES[how]);
    layers.push({ mediaType, digest: await putBlob(dir, blob), size: blob.length });
  }
  const platform = spec.platform ?? { os: "linux", architecture: "amd64" };
  const configBytes = enc.encode(JSON.stringify({
    architecture: platform.architecture,
    os: platform.os,
    ...(platform.variant ? { variant: platform.variant } : {}),
    config: { Cmd: ["/bin/sh"] },
    rootfs: { type: "layers", diff_ids: diffIds },
    ...spec.config,
  }));
  const config = await putBlob(dir, configBytes);
  const mediaType = spec.docker
    ? "application/vnd.docker.distribution.manifest.v2+json"
    : "application/vnd.oci.image.manifest.v1+json";
  const manifestBytes = enc.encode(JSON.stringify({
    schemaVersion: 2,
    mediaType,
    config: {
      mediaType: spec.docker
        ? "application/vnd.docker.container.image.v1+json"
        : "application/vnd.oci.image.config.v1+json",
      digest: config,
      size: configBytes.length,
    },
    layers,
  }));
  const manifest = await putBlob(dir, manifestBytes);
  if (!spec.noIndexEntry) {
    await addIndexEntry(dir, {
      mediaType,
      digest: manifest,
      size: manifestBytes.length,
      ...(spec.tag ? { annotations: { "org.opencontainers.image.ref.name": spec.tag } } : {}),
    });
  }
  return {
    manifest,
    manifestSize: manifestBytes.length,
    manifestBytes,
    mediaType,
    config,
    configBytes,
    diffIds,
    layers,
    tars: spec.layers.map((l) => l.tar),
  };
}

/** Writes a multi-platform index over images already written (with `noIndexEntry`), tagged `tag`. */
export async function writeIndex(
  dir: string,
  tag: string,
  images: { image: WrittenImage; platform: Platform }[],
  docker = false,
): Promise<string> {
  const mediaType = docker
    ? "application/vnd.docker.distribution.manifest.list.v2+json"
    : "application/vnd.oci.image.index.v1+json";
  const bytes = enc.encode(JSON.stringify({
    schemaVersion: 2,
    mediaType,
    manifests: images.map(({ image, platform }) => ({
      mediaType: image.mediaType,
      digest: image.manifest,
      size: image.manifestSize,
      platform,
    })),
  }));
  const digest = await putBlob(dir, bytes);
  await addIndexEntry(dir, {
    mediaType,
    digest,
    size: bytes.length,
    annotations: { "org.opencontainers.image.ref.name": tag },
  });
  return digest;
}

/** Changes to an archive that {@link packArchive} writes, for building hostile ones. */
export interface PackOptions {
  /** Entries added right after the `blobs/` directory. */
  extra?: TarSpec[];
  /** Edits the finished tar in place before it is written. */
  edit?: (tar: Uint8Array) => void;
}

/** Packs a layout directory into an oci-archive file (a plain tar). */
export async function packArchive(dir: string, file: string, options: PackOptions = {}): Promise<void> {
  const entries: TarSpec[] = [
    { path: "oci-layout", content: await Deno.readFile(`${dir}/oci-layout`) },
    { path: "index.json", content: await Deno.readFile(`${dir}/index.json`) },
    { path: "blobs/", type: "dir" },
    ...options.extra ?? [],
    { path: "blobs/sha256/", type: "dir" },
  ];
  for await (const e of Deno.readDir(`${dir}/blobs/sha256`)) {
    entries.push({ path: `blobs/sha256/${e.name}`, content: await Deno.readFile(`${dir}/blobs/sha256/${e.name}`) });
  }
  const tar = buildTar(entries);
  options.edit?.(tar);
  await Deno.writeFile(file, tar);
}

/** A small, varied layer: directories, files, a symlink, a hardlink, a long PAX name. */
export function sampleTar(seed = "a"): Uint8Array {
  return buildTar([
    { path: "etc/", type: "dir" },
    { path: "etc/hostname", content: `host-${seed}\n` },
    { path: "etc/motd", content: `welcome ${seed}\n`.repeat(40) },
    { path: "usr/", type: "dir" },
    { path: "usr/bin/", type: "dir" },
    {
      path: "usr/bin/tool",
      content: new Uint8Array(3000).map((_, i) => (i * 7 + seed.charCodeAt(0)) & 0xff),
      mode: 0o755,
    },
    { path: "usr/bin/tool-link", type: "symlink", linkname: "tool" },
    { path: "usr/bin/tool-hard", type: "hardlink", linkname: "usr/bin/tool" },
    { path: "usr/share/" + "deep/".repeat(25) + "file.txt", content: "long name\n" },
    { path: "empty", content: "" },
  ]);
}

// deno-lint-ignore no-explicit-any
type Json = any;

/**
 * Writes a variant of an image's manifest (and optionally config): `mutate` edits
 * the parsed documents; the result is tagged `tag` in the same layout. For
 * building broken images.
 */
export async function writeVariant(
  dir: string,
  image: WrittenImage,
  tag: string,
  mutate: (doc: { manifest: Json; config: Json }) => void | { configBytes?: Uint8Array; manifestBytes?: Uint8Array },
): Promise<string> {
  const doc = {
    manifest: JSON.parse(new TextDecoder().decode(image.manifestBytes)),
    config: JSON.parse(new TextDecoder().decode(image.configBytes)),
  };
  const raw = mutate(doc) || {};
  const configBytes = raw.configBytes ?? enc.encode(JSON.stringify(doc.config));
  if (doc.manifest.config.digest === image.config) {
    doc.manifest.config.digest = await putBlob(dir, configBytes);
    doc.manifest.config.size = configBytes.length;
  }
  const manifestBytes = raw.manifestBytes ?? enc.encode(JSON.stringify(doc.manifest));
  const digest = await putBlob(dir, manifestBytes);
  await addIndexEntry(dir, {
    mediaType: image.mediaType,
    digest,
    size: manifestBytes.length,
    annotations: { "org.opencontainers.image.ref.name": tag },
  });
  return digest;
}
