/**
 * Creating oci-delta artifacts: from an old and a new image in the repository
 * (pulled there first when they come from elsewhere), the changed layers are
 * encoded as tar-diffs against the old image's merged filesystem (in parallel,
 * in workers), each shipped as a tar-diff or as its original blob, whichever is
 * smaller, and the artifact (new manifest and config embedded byte for byte)
 * is written to an OCI layout or archive.
 *
 * @module
 */
import { UnsupportedError, UsageError } from "../errors.ts";
import type { Descriptor, Manifest, Platform } from "../oci/documents.ts";
import { EMPTY_CONFIG, encodeJson, parseImageConfig, parseManifest } from "../oci/documents.ts";
import { MediaType } from "../oci/media_types.ts";
import { pullResolved } from "../repo/pull.ts";
import type { ImageRecord, Repository } from "../repo/repository.ts";
import { TARDIFF_MEDIA_TYPE } from "../tardiff/format.ts";
import type { TarDiffFile } from "../tardiff/encode.ts";
import { type OpenOptions, openSource } from "../transport/reference.ts";
import { type ImageSource, resolveManifest } from "../transport/source.ts";
import { type Digest, sha256 } from "../util/digest.ts";
import { type ProgressSink, silentProgress } from "../util/progress.ts";
import { TaskPool } from "../workers/pool.ts";
import { DELTA_ARTIFACT_TYPE, DeltaAnnotation, DeltaContent } from "./annotations.ts";
import {
  type BlobContent,
  type LayoutDest,
  type LayoutWriter,
  openLayoutWriter,
  parseLayoutDest,
} from "../oci/layout_writer.ts";
import type { Cleanups } from "../util/cleanups.ts";
import { fileRangeStream } from "../util/streams.ts";

/** One blob of the artifact: its digest and size, and where its bytes come from. */
interface ArtifactBlob {
  digest: Digest;
  size: number;
  content: () => Promise<BlobContent>;
}

/**
 * Parses OUT: `oci:DIR[:TAG]` or `oci-archive:FILE[:TAG]`; an argument without
 * a transport prefix is an oci-archive file name (taken whole).
 */
export function parseDeltaOutput(s: string): LayoutDest {
  if (s.startsWith("docker://")) {
    throw new UnsupportedError(
      `cannot write a delta to ${s}: write it to oci:DIR or oci-archive:FILE and push that (e.g. with skopeo copy)`,
    );
  }
  if (/^(oci|oci-archive):/.test(s)) return parseLayoutDest(s, "output");
  if (s === "") throw new UsageError("output path is empty");
  return { transport: "oci-archive", path: s };
}

/** Prefix of image arguments that name an image already in the repository. */
export const REPO_PREFIX = "repo:";

/** How to create a delta. */
export interface CreateDeltaOptions {
  /** Platform to choose from an index (sources other than `repo:`). */
  platform: Platform;
  /** Layers encoded at once (workers). */
  jobs: number;
  /** Largest uncompressed layer accepted when pulling OLD and NEW. */
  maxLayerSize?: number;
  /** zstd level of the tar-diffs. */
  level: number;
  /** Source paths under these prefixes are not used. */
  ignoredPrefixes: string[];
  /** Options for opening sources (credentials, TLS). */
  openOptions?: OpenOptions;
  progress?: ProgressSink;
  /** Told before an image is pulled into the repository. */
  onPull?: (source: string) => void | Promise<void>;
  /** Where to register the removal of partial output, for an interrupt. */
  cleanups?: Cleanups;
}

/** What became of one layer of the new image. */
export interface LayerOutcome {
  index: number;
  diffId: Digest;
  /** The layer's blob digest in the new manifest. */
  digest: Digest;
  /** Size of that (compressed) blob. */
  originalSize: number;
  /** Reused from the old image, shipped as a tar-diff, or shipped as the original blob. */
  shipped: "reused" | "tar-diff" | "original";
  /** Bytes the delta carries for this layer (0 when reused, or when another layer carries the same blob). */
  size: number;
  /** Size of the tar-diff made for it, when one was made. */
  tarDiffSize?: number;
}

/** Totals, as `--stats` shows them. */
export interface DeltaStats {
  oldLayers: number;
  newLayers: number;
  layersReused: number;
  /** Layers encoded as tar-diffs (whether or not the tar-diff was shipped). */
  layersDiffed: number;
  /** Of those, shipped as the original blob because the tar-diff was not smaller. */
  layersOriginal: number;
  /** Bytes of the tar-diffs shipped. */
  tarDiffBytes: number;
  /** Compressed size of the new image's changed layers (what a plain pull would fetch for them). */
  originalBytes: number;
  /** Bytes the delta ships for those layers (tar-diffs plus originals). */
  layerBytes: number;
  /** `originalBytes - layerBytes`, and as a percentage of `originalBytes`. */
  savedBytes: number;
  savedPercent: number;
  /** Compressed size of all the new image's layers. */
  newImageBytes: number;
  /** Size of every blob of the artifact, its manifest included. */
  deltaBytes: number;
}

/** What create-delta did. */
export interface CreateDeltaResult {
  output: string;
  /** Digest and size of the delta manifest. */
  manifest: Digest;
  manifestSize: number;
  /** New (target) and old (source) image manifest digests, and the old config digest. */
  target: Digest;
  source: Digest;
  sourceConfig: Digest;
  layers: LayerOutcome[];
  stats: DeltaStats;
}

/** A source seen without its tag, so that pulling it for a delta leaves the repository's names alone. */
class UntaggedSource implements ImageSource {
  readonly tag = undefined;
  constructor(readonly inner: ImageSource) {}
  get description(): string {
    return this.inner.description;
  }
  root(): ReturnType<ImageSource["root"]> {
    return this.inner.root();
  }
  document(desc: Descriptor): Promise<Uint8Array> {
    return this.inner.document(desc);
  }
  blob(desc: Descriptor): Promise<ReadableStream<Uint8Array>> {
    return this.inner.blob(desc);
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

/** An image to make a delta from or to: its repository record, and its source while that is open. */
interface Resolved {
  record: ImageRecord;
  source?: ImageSource;
}

/**
 * Finds `spec` in the repository (`repo:NAME`, `repo:@sha256:...`) or pulls it
 * there (untagged) from its transport. The returned source is open; close it.
 */
async function resolveImage(repo: Repository, spec: string, options: CreateDeltaOptions): Promise<Resolved> {
  if (spec.startsWith(REPO_PREFIX)) {
    const name = spec.slice(REPO_PREFIX.length);
    if (name === "") {
      throw new UsageError(`invalid image ${JSON.stringify(spec)}: expected repo:NAME or repo:@sha256:<hex>`);
    }
    return { record: await repo.resolveImage(name) };
  }
  const source = await openSource(spec, options.openOptions);
  try {
    const resolved = await resolveManifest(source, options.platform);
    if (!(await repo.hasImage(resolved.digest))) await options.onPull?.(spec);
    const result = await pullResolved(repo, new UntaggedSource(source), resolved, {
      platform: options.platform,
      jobs: options.jobs,
      progress: options.progress,
      maxLayerSize: options.maxLayerSize,
    });
    return { record: await repo.readImage(result.manifest), source };
  } catch (e) {
    await source.close();
    throw e;
  }
}

/** The new image's documents, read back from the repository. */
interface Target {
  record: ImageRecord;
  manifestBytes: Uint8Array;
  manifest: Manifest;
  configBytes: Uint8Array;
  diffIds: Digest[];
}

async function loadTarget(repo: Repository, record: ImageRecord): Promise<Target> {
  const manifestBytes = await repo.readBlob(record.manifest);
  const manifest = parseManifest(manifestBytes, `manifest ${record.manifest}`);
  const configBytes = await repo.readBlob(record.config);
  const config = parseImageConfig(configBytes, `config ${record.config}`);
  return { record, manifestBytes, manifest, configBytes, diffIds: config.rootfs.diff_ids };
}

const EMPTY_CONFIG_BYTES = new TextEncoder().encode("{}");

/** Creates the delta from image `oldSpec` to image `newSpec` and writes it to `outSpec`. */
export async function createDelta(
  repo: Repository,
  oldSpec: string,
  newSpec: string,
  outSpec: string,
  options: CreateDeltaOptions,
): Promise<CreateDeltaResult> {
  const out = parseDeltaOutput(outSpec);
  const progress = options.progress ?? silentProgress;
  // Opened first, so a destination that cannot take the delta fails before any work.
  const writer = await openLayoutWriter(out);
  using _interrupted = options.cleanups?.add(() => writer.abort());
  let neu: Resolved | undefined;
  const tempFiles: string[] = [];
  try {
    const old = await resolveImage(repo, oldSpec, options);
    await old.source?.close();
    const newImage = await resolveImage(repo, newSpec, options);
    neu = newImage;
    const target = await loadTarget(repo, newImage.record);
    const oldIds = old.record.layers.map((l) => l.diffId);
    const oldSet = new Set(oldIds);
    const layers = target.manifest.layers;

    // Layers to encode: one per distinct diff_id the old image lacks.
    const todo = new Map<Digest, number>();
    target.diffIds.forEach((d, i) => {
      if (!oldSet.has(d) && !todo.has(d)) todo.set(d, i);
    });

    const encoded = new Map<Digest, TarDiffFile & { path: string }>();
    // Encoding (its suffix sort) cannot yield: in a worker even with -j 1, so signals are answered.
    const pool = new TaskPool(repo, Math.min(options.jobs, Math.max(1, todo.size)), { workersOnly: true });
    try {
      // Largest layer first: the longest encode starts at once.
      const order = [...todo].sort(([, a], [, b]) => layers[b].size - layers[a].size);
      await Promise.all(order.map(async ([diffId, i]) => {
        const path = repo.tempPath();
        tempFiles.push(path);
        const id = layers[i].digest;
        const total = newImage.record.layers[i]?.tarSize ?? 0;
        progress.start(id, `layer ${i + 1}/${layers.length}`, total);
        const result = await pool.run(() =>
          Promise.resolve({
            op: "encode",
            source: oldIds,
            ignoredPrefixes: options.ignoredPrefixes,
            target: diffId,
            out: path,
            level: options.level,
          }), (n) => progress.advance(id, n)) as TarDiffFile;
        encoded.set(diffId, { ...result, path });
        progress.finish(id, "encoded");
      }));
    } finally {
      pool.close();
    }

    // Ship each changed layer as its tar-diff or its original blob, whichever is smaller.
    const outcomes: LayerOutcome[] = [];
    const layerEntries: Descriptor[] = [];
    const blobs: ArtifactBlob[] = [];
    const shippedDigests = new Set<Digest>();
    const reused: Digest[] = [];
    const reusedDiffIds: Digest[] = [];
    for (let i = 0; i < layers.length; i++) {
      const desc = layers[i];
      const diffId = target.diffIds[i];
      const outcome: LayerOutcome = {
        index: i,
        diffId,
        digest: desc.digest,
        originalSize: desc.size,
        shipped: "reused",
        size: 0,
      };
      outcomes.push(outcome);
      if (oldSet.has(diffId)) {
        if (!reused.includes(desc.digest)) {
          reused.push(desc.digest);
          reusedDiffIds.push(diffId);
        }
        continue;
      }
      const tarDiff = encoded.get(diffId)!;
      outcome.tarDiffSize = tarDiff.size;
      const useOriginal = newImage.source !== undefined && desc.size <= tarDiff.size;
      outcome.shipped = useOriginal ? "original" : "tar-diff";
      if (shippedDigests.has(desc.digest)) continue; // same blob already carried
      shippedDigests.add(desc.digest);
      if (useOriginal) {
        const source = newImage.source!;
        layerEntries.push(layerEntry(desc.mediaType, desc.digest, desc.size, desc.digest));
        blobs.push({ digest: desc.digest, size: desc.size, content: () => source.blob(desc) });
        outcome.size = desc.size;
      } else {
        layerEntries.push(layerEntry(TARDIFF_MEDIA_TYPE, tarDiff.digest, tarDiff.size, desc.digest));
        blobs.push({
          digest: tarDiff.digest,
          size: tarDiff.size,
          content: () => Promise.resolve(fileRangeStream(tarDiff.path)),
        });
        outcome.size = tarDiff.size;
      }
    }

    const annotations: Record<string, string> = {
      [DeltaAnnotation.target]: target.record.manifest,
      [DeltaAnnotation.source]: old.record.manifest,
      [DeltaAnnotation.sourceConfig]: old.record.config,
    };
    if (reused.length) {
      annotations[DeltaAnnotation.reused] = JSON.stringify(reused);
      annotations[DeltaAnnotation.reusedDiffId] = JSON.stringify(reusedDiffIds);
    }
    const manifestDesc = {
      mediaType: target.record.mediaType,
      digest: target.record.manifest,
      size: target.manifestBytes.length,
    };
    const delta = {
      schemaVersion: 2,
      mediaType: MediaType.ociManifest,
      artifactType: DELTA_ARTIFACT_TYPE,
      config: { mediaType: EMPTY_CONFIG.mediaType, digest: EMPTY_CONFIG.digest, size: EMPTY_CONFIG.size },
      layers: [
        { ...manifestDesc, annotations: { [DeltaAnnotation.content]: DeltaContent.imageManifest } },
        {
          mediaType: target.manifest.config.mediaType,
          digest: target.record.config,
          size: target.configBytes.length,
          annotations: { [DeltaAnnotation.content]: DeltaContent.imageConfig },
        },
        ...layerEntries,
      ],
      subject: manifestDesc,
      annotations,
    };
    const deltaBytes = encodeJson(delta);
    const deltaDesc: Descriptor = {
      mediaType: MediaType.ociManifest,
      digest: sha256(deltaBytes),
      size: deltaBytes.length,
    };
    const bytes = (b: Uint8Array) => () => Promise.resolve(b);
    const allBlobs: ArtifactBlob[] = [
      { digest: EMPTY_CONFIG.digest, size: EMPTY_CONFIG.size, content: bytes(EMPTY_CONFIG_BYTES) },
      { digest: target.record.manifest, size: target.manifestBytes.length, content: bytes(target.manifestBytes) },
      { digest: target.record.config, size: target.configBytes.length, content: bytes(target.configBytes) },
      ...blobs,
      { digest: deltaDesc.digest, size: deltaDesc.size, content: bytes(deltaBytes) },
    ];
    await writeArtifact(writer, allBlobs, deltaDesc, out.tag);

    const changed = outcomes.filter((o) => o.shipped !== "reused");
    const originalBytes = sum(changed.map((o) => o.originalSize));
    const layerBytes = sum(outcomes.map((o) => o.size));
    const stats: DeltaStats = {
      oldLayers: oldIds.length,
      newLayers: layers.length,
      layersReused: outcomes.length - changed.length,
      layersDiffed: changed.length,
      layersOriginal: changed.filter((o) => o.shipped === "original").length,
      tarDiffBytes: sum(outcomes.filter((o) => o.shipped === "tar-diff").map((o) => o.size)),
      originalBytes,
      layerBytes,
      savedBytes: originalBytes - layerBytes,
      savedPercent: originalBytes ? Math.round((1000 * (originalBytes - layerBytes)) / originalBytes) / 10 : 0,
      newImageBytes: sum(layers.map((l) => l.size)),
      deltaBytes: sum([...new Map(allBlobs.map((b) => [b.digest, b.size])).values()]),
    };
    return {
      output: `${out.transport}:${out.path}${out.tag ? `:${out.tag}` : ""}`,
      manifest: deltaDesc.digest,
      manifestSize: deltaDesc.size,
      target: target.record.manifest,
      source: old.record.manifest,
      sourceConfig: old.record.config,
      layers: outcomes,
      stats,
    };
  } catch (e) {
    await writer.abort();
    throw e;
  } finally {
    await neu?.source?.close();
    for (const path of tempFiles) await Deno.remove(path).catch(() => {});
  }
}

/** Writes the artifact's blobs and lists its manifest; visible only once all is written. */
async function writeArtifact(
  writer: LayoutWriter,
  blobs: ArtifactBlob[],
  manifest: Descriptor,
  tag: string | undefined,
): Promise<void> {
  const written = new Set<Digest>();
  for (const blob of blobs) {
    if (written.has(blob.digest)) continue;
    written.add(blob.digest);
    await writer.putBlob(await blob.content(), blob.digest);
  }
  writer.addManifest(manifest, tag);
  await writer.commit();
}

function layerEntry(mediaType: string, digest: Digest, size: number, to: Digest): Descriptor {
  return {
    mediaType,
    digest,
    size,
    annotations: { [DeltaAnnotation.content]: DeltaContent.imageLayer, [DeltaAnnotation.to]: to },
  };
}

function sum(values: number[]): number {
  return values.reduce((a, b) => a + b, 0);
}
