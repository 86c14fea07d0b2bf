/**
 * Exporting an image from the repository to an OCI layout: every layer rebuilt
 * from its record (and checked against its diff_id on the way), compressed and
 * streamed into the destination; the config written byte for byte (so the
 * image ID, the config digest, is unchanged); and a new OCI manifest naming the
 * new layer blobs.
 *
 * Layers are compressed on all workers at once, block by block (see
 * compression/block_compress.ts), one layer after another: that keeps every core busy
 * even for an image with one big layer, writes an archive member by member,
 * and makes the output the same whatever the number of workers.
 *
 * A Docker schema 2 image is written as an OCI image: OCI manifest and layer
 * media types, and the config descriptor typed as an OCI config (its bytes, and
 * so its digest, unchanged).
 *
 * @module
 */
import { DigestMismatchError } from "../errors.ts";
import { type Descriptor, encodeJson, type Manifest, parseManifest } from "../oci/documents.ts";
import { type LayoutDest, type LayoutWriter, openLayoutWriter, type WrittenBlob } from "../oci/layout_writer.ts";
import { layerTypeFor, MediaType } from "../oci/media_types.ts";
import { compressInBlocks, DEFAULT_COMPRESSION_LEVEL, isBlockFormat } from "../compression/block_compress.ts";
import { type DiffId, type Digest, Hasher, parseDigest } from "../util/digest.ts";
import { type ProgressSink, silentProgress } from "../util/progress.ts";
import type { LayerCompression } from "../compression/stages.ts";
import { withoutBlobAnnotations } from "../chunked/annotations.ts";
import { writeZstdChunked } from "../chunked/writer.ts";
import { fanOut } from "./fan_out.ts";
import type { LayerPool } from "./layer_tasks.ts";
import { layerTarChunks } from "../repo/layer_reader.ts";
import type { Cleanups } from "../util/cleanups.ts";
import { osErrorAt } from "../util/os_error.ts";
import type { ImageRecord, Repository } from "../repo/repository.ts";

/** How to export. */
export interface ExportOptions {
  /** Layer compression. */
  compression: LayerCompression;
  /** Compression level (gzip 1-9, zstd 1-19); default the format's own. */
  level?: number;
  /** Threads compressing at once. */
  jobs: number;
  progress?: ProgressSink;
  /** Where to register the removal of partial output, for an interrupt. */
  cleanups?: Cleanups;
}

/** One exported layer. */
export interface ExportedLayer extends Descriptor {
  diffId: DiffId;
}

/** What an export wrote. */
export interface ExportResult {
  /** The destination as written by the user. */
  destination: string;
  tag?: string;
  /** Digest of the new manifest. */
  manifest: Digest;
  /** Digest of the config: the same as in the repository. */
  config: Digest;
  layers: ExportedLayer[];
  /** Bytes of all blobs the image references (manifest, config, layers). */
  size: number;
}

/**
 * Exports `record` to `dest` (directory or archive) as one step: on any
 * failure the destination is left as it was.
 */
export async function exportImage(
  repo: Repository,
  record: ImageRecord,
  dest: LayoutDest,
  options: ExportOptions,
): Promise<ExportResult> {
  const writer = await openLayoutWriter(dest);
  using _interrupted = options.cleanups?.add(() => writer.abort());
  try {
    const result = await writeImage(repo, record, writer, dest.tag, options);
    await writer.commit();
    return result;
  } catch (e) {
    await writer.abort();
    throw osErrorAt(e, dest.path, `cannot export to ${dest.transport}:${dest.path}`); // a write names no path itself
  }
}

/**
 * Writes the blobs of `record` and lists its new manifest (under `tag`) in
 * `writer`, without committing: for callers that write more than one image.
 */
export async function writeImage(
  repo: Repository,
  record: ImageRecord,
  writer: LayoutWriter,
  tag: string | undefined,
  options: ExportOptions,
): Promise<ExportResult> {
  const source = parseManifest(await repo.readBlob(record.manifest), `manifest ${record.manifest}`);
  const configBytes = await repo.readBlob(record.config);
  const progress = options.progress ?? silentProgress;
  const mediaType = layerTypeFor(options.compression);

  // The calling thread reads layers and writes the output while compression runs in workers.
  const distinct = distinctLayers(record);
  const written = await fanOut(repo, distinct, {
    jobs: options.compression !== "none" ? options.jobs : 1,
    parallel: 1,
    inOrder: true,
    progress,
    unit: ({ diffId, tarSize, index }) => ({
      id: diffId,
      label: `layer ${index + 1}/${record.layers.length}`,
      total: tarSize,
    }),
    pool: { useCallingThread: false },
  }, async (pool, { diffId }, onBytes) => {
    let annotations: Record<string, string> | undefined;
    const layer = exportedLayer(repo, diffId, pool, options, onBytes, (a) => (annotations = a));
    const { digest, size } = await writer.putBlob(layer);
    return { mediaType, digest, size, ...(annotations ? { annotations } : {}) } as Descriptor;
  });
  const done = new Map<Digest, Descriptor>(distinct.map((l, i) => [l.diffId, written[i]]));
  const layers = exportedLayers(record, source, done);
  const config = await writer.putBlob(configBytes, record.config);
  const manifestBytes = exportedManifest(source, config, layers);
  const manifest = await writer.putBlob(manifestBytes);
  writer.addManifest({ mediaType: MediaType.ociManifest, digest: manifest.digest, size: manifest.size }, tag);
  const layerBytes = [...done.values()].reduce((a, d) => a + d.size, 0);
  return {
    destination: writer.description,
    ...(tag ? { tag } : {}),
    manifest: manifest.digest,
    config: config.digest,
    layers,
    size: manifest.size + config.size + layerBytes,
  };
}

/** Each distinct layer of `record` once, with the index of its first use: what an export or push writes. */
export function distinctLayers(record: ImageRecord): (ImageRecord["layers"][number] & { index: number })[] {
  return [...new Map(record.layers.map((l, i) => [l.diffId, { ...l, index: i }])).values()];
}

/**
 * A stored layer as an export writes it: rebuilt from the repository (failing
 * at its end unless it hashed to its diff_id) and compressed in blocks, or as
 * zstd:chunked frames, on `pool`. The same layer and options always give the
 * same bytes, so the stream can be made again (a push that must start an
 * upload over). `annotate` receives the blob's descriptor annotations (for
 * zstd:chunked) once the stream has ended.
 */
export function exportedLayer(
  repo: Repository,
  diffId: DiffId,
  pool: LayerPool,
  options: Pick<ExportOptions, "compression" | "level" | "jobs">,
  onBytes: (n: number) => void,
  annotate: (annotations: Record<string, string>) => void = () => {},
): AsyncIterable<Uint8Array> {
  const tar = verifiedTar(repo, diffId, onBytes);
  if (options.compression === "zstd:chunked") {
    return writeZstdChunked(tar, {
      what: `layer ${diffId}`,
      level: options.level ?? DEFAULT_COMPRESSION_LEVEL.zstd,
      inFlight: options.jobs * 2,
      run: (job) => pool.run("frames", () => Promise.resolve({ job })),
      annotate,
    });
  }
  if (!isBlockFormat(options.compression)) return tar;
  return compressInBlocks(tar, {
    format: options.compression,
    level: options.level,
    inFlight: options.jobs * 2,
    run: (job) => pool.run("compress", () => Promise.resolve({ job })),
  });
}

/**
 * The exported image's layers in manifest order, from the blobs written per
 * diff_id (`done`): the source's layer annotations kept, except those that
 * described the source's blob bytes (a TOC's position and digest), with the
 * new blob's own.
 */
export function exportedLayers(record: ImageRecord, source: Manifest, done: Map<Digest, Descriptor>): ExportedLayer[] {
  const oci = source.mediaType !== MediaType.dockerManifest;
  return record.layers.map(({ diffId }, i) => {
    const { annotations: written, ...blob } = done.get(diffId)!;
    const annotations = { ...withoutBlobAnnotations(oci ? source.layers[i]?.annotations : undefined), ...written };
    return { ...blob, ...(Object.keys(annotations).length > 0 ? { annotations } : {}), diffId };
  });
}

/**
 * The new OCI manifest of an exported image: the source manifest's artifact
 * type, config annotations, subject and annotations kept (from an OCI source),
 * the config typed as an OCI config, and the new layer blobs.
 */
export function exportedManifest(source: Manifest, config: WrittenBlob, layers: readonly ExportedLayer[]): Uint8Array {
  const oci = source.mediaType !== MediaType.dockerManifest;
  return encodeJson({
    schemaVersion: 2,
    mediaType: MediaType.ociManifest,
    ...(oci && source.artifactType ? { artifactType: source.artifactType } : {}),
    config: {
      mediaType: source.config.mediaType === MediaType.dockerConfig ? MediaType.ociConfig : source.config.mediaType,
      digest: config.digest,
      size: config.size,
      ...(oci && source.config.annotations ? { annotations: source.config.annotations } : {}),
    },
    layers: layers.map(({ diffId: _, ...d }) => d),
    ...(oci && source.subject ? { subject: source.subject } : {}),
    ...(oci && source.annotations ? { annotations: source.annotations } : {}),
  });
}

/**
 * A stored layer's tar, rebuilt from the repository, that fails at its end
 * unless it hashed to its diff_id (a damaged object never leaves unnoticed).
 */
async function* verifiedTar(
  repo: Repository,
  diffId: DiffId,
  onBytes: (n: number) => void,
): AsyncGenerator<Uint8Array> {
  const hasher = new Hasher(parseDigest(diffId).algorithm);
  for await (const chunk of layerTarChunks(repo, diffId)) {
    hasher.update(chunk);
    onBytes(chunk.length);
    yield chunk;
  }
  const actual = hasher.digest();
  if (actual !== diffId) {
    throw new DigestMismatchError(`layer ${diffId} rebuilt from the repository (run deltaship fsck)`, diffId, actual);
  }
}
