/**
 * Creating oci-delta artifacts, in named steps: find or pull the old and new
 * images (delta_inputs.ts); encode every changed layer of the new image as a
 * tar-diff against the old image's merged filesystem, in parallel, in workers
 * ({@link encodeChangedLayers}); ship each as its tar-diff or its original blob,
 * whichever is smaller ({@link chooseShipping}); build the artifact manifest
 * (`buildDeltaManifest`, beside its parser in delta/artifact.ts); write it all to
 * an OCI layout or archive; and count what was saved ({@link deltaStats}).
 *
 * @module
 */
import { buildDeltaManifest, EMPTY_CONFIG_BYTES, type ShippedLayer } from "../delta/artifact.ts";
import type { TarDiffFile } from "../delta/encode_layer.ts";
import type { EncodeOptions } from "../tardiff/encode.ts";
import { type Descriptor, EMPTY_CONFIG, type Platform } from "../oci/documents.ts";
import { MediaType } from "../oci/media_types.ts";
import { type BlobContent, type LayoutDest, type LayoutWriter, openLayoutWriter } from "../oci/layout_writer.ts";
import type { Repository } from "../repo/repository.ts";
import { TARDIFF_MEDIA_TYPE } from "../tardiff/format.ts";
import { type ImageReference, type OpenOptions, openSource, type SourceReference } from "../transport/reference.ts";
import { resolveManifest } from "../transport/source.ts";
import { SignatureError, withContext } from "../errors.ts";
import { payloadTarget, readSignatureArtifact, type SignatureArtifact, signatureLayers } from "../delta/signature.ts";
import type { Cleanups } from "../util/cleanups.ts";
import { type DiffId, type Digest, sha256 } from "../util/digest.ts";
import type { ProgressSink } from "../util/progress.ts";
import { fileRangeStream } from "../util/streams.ts";
import { type DeltaInput, deltaInput, loadTarget, type TargetImage } from "./delta_inputs.ts";
import { fanOut } from "./fan_out.ts";
import { osErrorAt } from "../util/os_error.ts";

/** One blob of the artifact: its digest and size, and where its bytes come from (as often as asked). */
export interface ArtifactBlob {
  digest: Digest;
  size: number;
  content: () => Promise<BlobContent>;
}

/** Where an artifact is written: an OCI layout (below), or a registry (`RegistryArtifactSink` in push.ts). */
export interface ArtifactSink {
  /** The destination as the user wrote it. */
  readonly description: string;
  /** Writes one blob (its digest checked). */
  putBlob(blob: ArtifactBlob): Promise<void>;
  /** Writes the manifest, under `tag` if given, once every blob is written; then all is visible. */
  commit(manifest: Descriptor, bytes: Uint8Array, tag: string | undefined): Promise<void>;
  /** Leaves the destination as it was, as far as it can. */
  abort(): Promise<void>;
}

/** An {@link ArtifactSink} writing into an OCI layout or archive (naming it when a write fails: see os_error.ts). */
function layoutSink(writer: LayoutWriter, out: LayoutDest): ArtifactSink {
  const description = `${out.transport}:${out.path}`;
  const named = async (write: () => Promise<void>) => {
    try {
      await write();
    } catch (e) {
      throw osErrorAt(e, out.path, `cannot write ${description}`);
    }
  };
  return {
    description,
    putBlob: (blob) => named(async () => void await writer.putBlob(await blob.content(), blob.digest)),
    commit: (manifest, bytes, tag) =>
      named(async () => {
        await writer.putBlob(bytes, manifest.digest);
        writer.addManifest(manifest, tag);
        await writer.commit();
      }),
    abort: () => writer.abort(),
  };
}

/** How to create a delta. */
export interface CreateDeltaOptions {
  /** Platform to choose from an index (sources other than `repo:`). */
  platform: Platform;
  /** The platform was asked for: OLD and NEW, when not from an index, must be for it too. */
  requirePlatform?: boolean;
  /** Layers encoded at once (workers). */
  jobs: number;
  /** Largest uncompressed layer accepted when pulling OLD and NEW. */
  maxLayerSize?: number;
  /** zstd level of the tar-diffs. */
  level: number;
  /**
   * How changed files are diffed (`--binary-diff`, default bsdiff) and each
   * method's settings (`--zstd-diff-level`, `--zstd-diff-window`, `--max-zstd-diff-size`, `--max-bsdiff-size`).
   */
  diff?: Omit<EncodeOptions, "level" | "progress">;
  /** Source paths under these prefixes are not used. */
  ignoredPrefixes: string[];
  /**
   * Cosign signature artifacts of the new image to embed (`--signature`), as
   * oci-delta does; each must hold a payload that signs the new image.
   */
  signatures?: SourceReference[];
  /** Options for opening sources (credentials, TLS). */
  openOptions?: OpenOptions;
  progress?: ProgressSink;
  /** Told before an image is pulled into the repository. */
  onPull?: (reference: string) => void | Promise<void>;
  /** Where to register the removal of partial output, for an interrupt. */
  cleanups?: Cleanups;
}

/** What became of one layer of the new image. */
export interface LayerOutcome {
  index: number;
  diffId: DiffId;
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

/**
 * Creates the delta from image `oldRef` to image `newRef` and writes it to
 * `out` (a layout, or a sink such as a registry; its `tag` then comes with it).
 */
export async function createDelta(
  repo: Repository,
  oldRef: ImageReference,
  newRef: ImageReference,
  out: LayoutDest | (ArtifactSink & { tag?: string }),
  options: CreateDeltaOptions,
): Promise<CreateDeltaResult> {
  // Opened first, so a destination that cannot take the delta fails before any work.
  const writer = "putBlob" in out ? out : layoutSink(await openLayoutWriter(out), out);
  using _interrupted = options.cleanups?.add(() => writer.abort());
  let neu: DeltaInput | undefined;
  const encoded = new Map<DiffId, EncodedLayer>();
  const tarDiffFiles: string[] = [];
  try {
    const old = await deltaInput(repo, oldRef, options);
    await old.source?.close();
    neu = await deltaInput(repo, newRef, options);
    const target = await loadTarget(repo, neu.record);
    const oldIds = old.record.layers.map((l) => l.diffId);
    for (const e of await encodeChangedLayers(repo, oldIds, target, options, tarDiffFiles)) encoded.set(e.diffId, e);
    const shipping = chooseShipping(target, new Set(oldIds), encoded, neu.source);
    const signatures = [];
    for (const ref of options.signatures ?? []) signatures.push(await loadSignature(ref, target, options));
    const deltaBytes = buildDeltaManifest({
      target: { mediaType: target.record.mediaType, digest: target.record.manifest, size: target.manifestBytes.length },
      targetConfig: {
        mediaType: target.manifest.config.mediaType,
        digest: target.record.config,
        size: target.configBytes.length,
      },
      source: old.record.manifest,
      sourceConfig: old.record.config,
      reused: shipping.reused,
      layers: shipping.layers,
      extra: signatures.flatMap(signatureLayers),
    });
    const deltaDesc: Descriptor = {
      mediaType: MediaType.ociManifest,
      digest: sha256(deltaBytes),
      size: deltaBytes.length,
    };
    const bytes = (b: Uint8Array) => () => Promise.resolve(b);
    const blobs: ArtifactBlob[] = [
      { digest: EMPTY_CONFIG.digest, size: EMPTY_CONFIG.size, content: bytes(EMPTY_CONFIG_BYTES) },
      { digest: target.record.manifest, size: target.manifestBytes.length, content: bytes(target.manifestBytes) },
      { digest: target.record.config, size: target.configBytes.length, content: bytes(target.configBytes) },
      ...shipping.blobs,
      ...signatures.flatMap((sig) =>
        [
          { desc: sig.manifest, bytes: sig.manifestBytes },
          { desc: sig.config, bytes: sig.configBytes },
          ...sig.layers,
        ].map(({ desc, bytes: b }) => ({ digest: desc.digest, size: desc.size, content: bytes(b) }))
      ),
      { digest: deltaDesc.digest, size: deltaDesc.size, content: bytes(deltaBytes) },
    ];
    await writeArtifact(writer, blobs, deltaDesc, deltaBytes, out.tag);
    return {
      output: `${writer.description}${out.tag ? `:${out.tag}` : ""}`,
      manifest: deltaDesc.digest,
      manifestSize: deltaDesc.size,
      target: target.record.manifest,
      source: old.record.manifest,
      sourceConfig: old.record.config,
      layers: shipping.outcomes,
      stats: deltaStats(shipping.outcomes, oldIds.length, target, blobs),
    };
  } catch (e) {
    await writer.abort();
    throw e;
  } finally {
    await neu?.source?.close();
    for (const path of tarDiffFiles) await Deno.remove(path).catch(() => {});
  }
}

/**
 * Reads the cosign signature artifact `ref` names, and checks that it signs the
 * new image (a payload naming its manifest digest): a signature of another
 * image would only make every verifying client refuse the delta.
 */
async function loadSignature(
  ref: SourceReference,
  target: TargetImage,
  options: CreateDeltaOptions,
): Promise<SignatureArtifact> {
  const what = `signature ${ref.text}`;
  const source = await openSource(ref, options.openOptions);
  try {
    const resolved = await resolveManifest(source, options.platform);
    const desc = { mediaType: resolved.mediaType, digest: resolved.digest, size: resolved.bytes.length };
    const sig = await readSignatureArtifact(source, desc, resolved.bytes, what);
    const signed = sig.layers.map((l) => {
      try {
        return payloadTarget(l.bytes);
      } catch (e) {
        throw withContext(e, `${what}: payload ${l.desc.digest}`);
      }
    });
    if (!signed.includes(target.record.manifest)) {
      throw new SignatureError(`${what} signs ${signed.join(", ")}, not the new image ${target.record.manifest}`);
    }
    return sig;
  } finally {
    await source.close();
  }
}

/** A changed layer encoded as a tar-diff in a temporary file. */
interface EncodedLayer extends TarDiffFile {
  diffId: DiffId;
  path: string;
}

/**
 * Encodes each distinct layer of `target` that the old image (layers `oldIds`)
 * lacks, largest first, in workers: encoding (its suffix sort) cannot yield, so
 * it runs in a worker even with `-j 1`, where signals are still answered. Each
 * tar-diff file's path is added to `files` before it is made (the caller removes them).
 */
async function encodeChangedLayers(
  repo: Repository,
  oldIds: DiffId[],
  target: TargetImage,
  options: CreateDeltaOptions,
  files: string[],
): Promise<EncodedLayer[]> {
  const old = new Set(oldIds);
  const todo = new Map<DiffId, number>(); // diff_id -> index of its first layer
  target.diffIds.forEach((d, i) => {
    if (!old.has(d) && !todo.has(d)) todo.set(d, i);
  });
  const layers = target.manifest.layers;
  return await fanOut(repo, [...todo], {
    jobs: options.jobs,
    progress: options.progress,
    pool: { workersOnly: true },
    unit: ([, i]) => ({
      id: layers[i].digest,
      label: `layer ${i + 1}/${layers.length}`,
      total: target.record.layers[i]?.tarSize ?? 0,
      size: layers[i].size,
    }),
    note: () => "encoded",
  }, async (pool, [diffId], onBytes) => {
    const path = repo.tempPath();
    files.push(path);
    const file = await pool.run("encode", () =>
      Promise.resolve({
        source: oldIds,
        ignoredPrefixes: options.ignoredPrefixes,
        target: diffId,
        out: path,
        level: options.level,
        diff: options.diff,
      }), onBytes);
    return { ...file, diffId, path };
  });
}

/** What a delta ships for each target layer, and the blobs that carry it. */
interface Shipping {
  outcomes: LayerOutcome[];
  reused: { digest: Digest; diffId: DiffId }[];
  layers: ShippedLayer[];
  blobs: ArtifactBlob[];
}

/**
 * Decides, layer by layer, what the delta carries: nothing for a layer the old
 * image has (reused); else the tar-diff, or the original compressed blob when it
 * is no larger and its source is still open (`repo:` images keep no blobs).
 * A blob two target layers share is carried once.
 */
function chooseShipping(
  target: TargetImage,
  old: Set<DiffId>,
  encoded: Map<DiffId, EncodedLayer>,
  newSource: DeltaInput["source"],
): Shipping {
  const shipping: Shipping = { outcomes: [], reused: [], layers: [], blobs: [] };
  const shipped = new Set<Digest>();
  for (const [i, desc] of target.manifest.layers.entries()) {
    const diffId = target.diffIds[i];
    const outcome: LayerOutcome = {
      index: i,
      diffId,
      digest: desc.digest,
      originalSize: desc.size,
      shipped: "reused",
      size: 0,
    };
    shipping.outcomes.push(outcome);
    if (old.has(diffId)) {
      if (!shipping.reused.some((r) => r.digest === desc.digest)) shipping.reused.push({ digest: desc.digest, diffId });
      continue;
    }
    const tarDiff = encoded.get(diffId)!;
    outcome.tarDiffSize = tarDiff.size;
    const useOriginal = newSource !== undefined && desc.size <= tarDiff.size;
    outcome.shipped = useOriginal ? "original" : "tar-diff";
    if (shipped.has(desc.digest)) continue; // same blob already carried
    shipped.add(desc.digest);
    if (useOriginal) {
      shipping.layers.push({ mediaType: desc.mediaType, digest: desc.digest, size: desc.size, to: desc.digest });
      shipping.blobs.push({ digest: desc.digest, size: desc.size, content: () => newSource.blob(desc) });
      outcome.size = desc.size;
    } else {
      shipping.layers.push({
        mediaType: TARDIFF_MEDIA_TYPE,
        digest: tarDiff.digest,
        size: tarDiff.size,
        to: desc.digest,
      });
      shipping.blobs.push({
        digest: tarDiff.digest,
        size: tarDiff.size,
        content: () => Promise.resolve(fileRangeStream(tarDiff.path)),
      });
      outcome.size = tarDiff.size;
    }
  }
  return shipping;
}

/** Writes the artifact's blobs, then its manifest; visible only once all is written. */
async function writeArtifact(
  writer: ArtifactSink,
  blobs: ArtifactBlob[],
  manifest: Descriptor,
  manifestBytes: Uint8Array,
  tag: string | undefined,
): Promise<void> {
  const written = new Set<Digest>([manifest.digest]);
  for (const blob of blobs) {
    if (written.has(blob.digest)) continue;
    written.add(blob.digest);
    await writer.putBlob(blob);
  }
  await writer.commit(manifest, manifestBytes, tag);
}

/** The totals `--stats` shows. */
function deltaStats(outcomes: LayerOutcome[], oldLayers: number, target: TargetImage, blobs: ArtifactBlob[]) {
  const changed = outcomes.filter((o) => o.shipped !== "reused");
  const originalBytes = sum(changed.map((o) => o.originalSize));
  const layerBytes = sum(outcomes.map((o) => o.size));
  const stats: DeltaStats = {
    oldLayers,
    newLayers: target.manifest.layers.length,
    layersReused: outcomes.length - changed.length,
    layersDiffed: changed.length,
    layersOriginal: changed.filter((o) => o.shipped === "original").length,
    tarDiffBytes: sum(outcomes.filter((o) => o.shipped === "tar-diff").map((o) => o.size)),
    originalBytes,
    layerBytes,
    savedBytes: originalBytes - layerBytes,
    savedPercent: originalBytes ? Math.round((1000 * (originalBytes - layerBytes)) / originalBytes) / 10 : 0,
    newImageBytes: sum(target.manifest.layers.map((l) => l.size)),
    deltaBytes: sum([...new Map(blobs.map((b) => [b.digest, b.size])).values()]),
  };
  return stats;
}

function sum(values: number[]): number {
  return values.reduce((a, b) => a + b, 0);
}
