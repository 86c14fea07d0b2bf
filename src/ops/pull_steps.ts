/**
 * What a plain pull and a delta pull share: their options and result, the one
 * "already present" skip (layers the repository holds are never fetched, even
 * when a delta ships them), and the one record-and-commit that makes an image
 * visible once all its layers are stored.
 *
 * @module
 */
import type { Manifest, Platform } from "../oci/documents.ts";
import { DEFAULT_MAX_LAYER_SIZE, type LayerLimits } from "../repo/layer_writer.ts";
import type { ImageRecord, Repository } from "../repo/repository.ts";
import { storeComposefsImage } from "../repo/composefs_image.ts";
import { FormatError } from "../errors.ts";
import { type ConfigDigest, type DiffId, type ManifestDigest, sha256 } from "../util/digest.ts";
import type { ProgressSink } from "../util/progress.ts";

/** How to pull. */
export interface PullOptions {
  /** Platform to choose from an index. */
  platform: Platform;
  /** The platform was asked for: a single image must be for it too (see resolveManifest). */
  requirePlatform?: boolean;
  /** Most layers processed at once. */
  jobs: number;
  /** Tag to give the image; defaults to the source's tag. */
  name?: string;
  progress?: ProgressSink;
  /** Largest uncompressed layer accepted (default {@link DEFAULT_MAX_LAYER_SIZE}). */
  maxLayerSize?: number;
  /** Bytes of source files a delta's rebuilds may hold at once (default `SOURCE_MEMORY`; see ops/memory_plan.ts). */
  sourceMemory?: number;
  /** The `--memory-limit` that `sourceMemory` and `jobs` were planned for, named in errors. */
  memoryLimit?: number;
  /** Whether to look for a published delta to the image (registries; default auto). */
  delta?: DeltaMode;
  /** Told, in one line, why a pull that looked for a delta pulls the full image. */
  onNote?: (line: string) => void | Promise<void>;
  /** Whether zstd:chunked layers are fetched partially (`--partial`; default auto). */
  partial?: "auto" | "never";
  /** A delta must embed a signature of its target that verifies with this key (`--verify-key`). */
  verifyKey?: CryptoKey;
}

/**
 * When a pull of an image looks for a delta to it: `auto` uses one that fits
 * and falls back to the full image, `require` fails instead of falling back,
 * `never` does not look.
 */
export type DeltaMode = "auto" | "never" | "require";

/** What a pull that looked for a delta found, and which way it went. */
export interface DiscoveryInfo {
  /** The image came from a published delta, or as an image (its layers whole or partially: see `layers`). */
  way: "delta" | "full";
  /** Why the full image was pulled (absent when a delta was applied). */
  reason?: string;
  /** How the deltas were listed: the referrers API, the fallback tag, or neither (none found, or not asked). */
  via: "api" | "tag" | "none";
  /** Deltas to the image listed, and of those, ones starting from an image the repository holds. */
  listed: number;
  fitting: number;
  /** The delta applied (when `way` is delta). */
  delta?: ManifestDigest;
  /** Compressed bytes of the image's layers the repository lacks: what the full pull fetches. */
  missingBytes: number;
  /**
   * What pulling the image with partial layers would fetch (their metadata and frames, other layers whole), when it
   * was weighed against a delta.
   */
  partialBytes?: number;
  /** Why the listing was cut short (too many pages, bytes or deltas), when it was. */
  truncated?: string;
}

/** What a delta pull did, beyond what every pull reports. */
export interface DeltaPullInfo {
  /** Digest of the delta manifest applied. */
  manifest: ManifestDigest;
  /** Manifest digest of the source image it was applied against (absent when none was needed). */
  source?: ManifestDigest;
  /** Target layers rebuilt from tar-diffs. */
  layersRebuilt: number;
  /** Target layers imported from original blobs shipped in the delta. */
  layersImported: number;
  /** Compressed size of the target image's layers: what a full pull would have fetched. */
  imageSize: number;
  /** The delta embeds a signature; and (with `--verify-key`) it verified. */
  signed: boolean;
  verified?: boolean;
}

/** Which way one layer of an image pull went, and what it cost. */
export interface LayerWay {
  /** The layer's blob digest. */
  digest: string;
  /** `partial`: only the files the repository lacked, by Range; `full`: the whole blob. */
  way: "partial" | "full";
  /** The blob's size: what a whole-blob pull fetches. */
  size: number;
  /** Bytes received for the layer (a partial pull's metadata and frames; a failed partial pull's too). */
  fetched: number;
  /** Why a zstd:chunked layer was fetched whole (absent for other layers). */
  reason?: string;
  /** For a partial pull: files in the layer, those reused from the repository, and chunks of others reused. */
  files?: number;
  reusedFiles?: number;
  reusedChunks?: number;
}

/** What a pull did. */
export interface PullResult {
  /** The tag given, if any. */
  name?: string;
  manifest: ManifestDigest;
  config: ConfigDigest;
  /** The image was already stored; nothing was fetched. */
  alreadyPresent: boolean;
  /** Layers imported, and layers skipped because the repository had them. */
  layersFetched: number;
  layersSkipped: number;
  /** Compressed bytes read from the source for layers (for a delta: its layer blobs). */
  bytesFetched: number;
  /** Set when the pulled manifest was an oci-delta, which was applied. */
  delta?: DeltaPullInfo;
  /** Set when the pull looked for a published delta to the image. */
  discovery?: DiscoveryInfo;
  /** For an image pull from a registry (not a delta): each layer fetched, which way it went. */
  layers?: LayerWay[];
}

/** The limits a pull puts on each layer it stores. */
export function layerLimits(options: Pick<PullOptions, "maxLayerSize">): LayerLimits {
  return { maxLayerSize: options.maxLayerSize ?? DEFAULT_MAX_LAYER_SIZE };
}

/** A layer of an image being pulled: its place in the manifest, descriptor and diff_id. */
export interface ImageLayer {
  index: number;
  desc: Manifest["layers"][number];
  diffId: DiffId;
}

/**
 * The layers of `manifest` (with `diffIds`) a pull must produce: one per distinct
 * diff_id the repository lacks. Those it has are reported to `progress` as
 * already present and skipped.
 */
export async function missingLayers(
  repo: Repository,
  manifest: Manifest,
  diffIds: readonly DiffId[],
  progress: ProgressSink,
): Promise<ImageLayer[]> {
  const todo: ImageLayer[] = [];
  const seen = new Set<DiffId>();
  for (const [index, desc] of manifest.layers.entries()) {
    const diffId = diffIds[index];
    if (seen.has(diffId)) continue;
    seen.add(diffId);
    if (await repo.hasLayer(diffId)) {
      progress.start(desc.digest, layerLabel(index, manifest), 0);
      progress.finish(desc.digest, "already present");
    } else {
      todo.push({ index, desc, diffId });
    }
  }
  return todo;
}

/** A layer's progress label: `layer 2/5`. */
export function layerLabel(index: number, manifest: Manifest): string {
  return `layer ${index + 1}/${manifest.layers.length}`;
}

/** An image whose layers are all stored, to be made visible. */
export interface PulledImage {
  /**
   * The image the pull was asked for: the manifest digest a reference
   * resolved to, or the target a delta names. What is committed must be it.
   */
  requested: ManifestDigest;
  manifest: ManifestDigest;
  manifestBytes: Uint8Array;
  /** The manifest's media type. */
  mediaType: string;
  config: ConfigDigest;
  configBytes: Uint8Array;
  diffIds: readonly DiffId[];
  /** Tag to give it. */
  name?: string;
  /** The `--memory-limit` its composefs image must be made within. */
  memoryLimit?: number;
}

/**
 * Throws unless `manifest`, the image a pull is about to store or tag (and
 * `bytes`, its manifest, when given), is `requested`, the one it was asked for:
 * whatever path led there, no tag ever names another image (a second check
 * behind discovery's choice of delta).
 */
export function checkRequested(
  requested: ManifestDigest,
  manifest: ManifestDigest,
  name?: string,
  bytes?: Uint8Array,
): void {
  const actual = bytes ? sha256(bytes) : manifest;
  if (manifest === requested && actual === requested) return;
  throw new FormatError(
    `refusing to store image ${actual}${name ? ` as ${name}` : ""}: the pull asked for ${requested}`,
  );
}

/**
 * Makes the image's composefs image (stored as an object), writes the image
 * record (layers' sizes read from the repository, the composefs image named) and
 * commits the image and its tag, once {@link checkRequested} says it is the image asked for.
 */
export async function commitPulled(repo: Repository, image: PulledImage): Promise<void> {
  checkRequested(image.requested, image.manifest, image.name, image.manifestBytes);
  const layers = [];
  for (const diffId of image.diffIds) layers.push({ diffId, tarSize: (await repo.layerInfo(diffId)).tarSize });
  const record: ImageRecord = {
    manifest: image.manifest,
    config: image.config,
    mediaType: image.mediaType,
    layers,
    created: new Date().toISOString(),
    composefs: await storeComposefsImage(repo, image.diffIds, image.memoryLimit),
  };
  await repo.commitImage(record, image.manifestBytes, image.configBytes, image.name);
}
