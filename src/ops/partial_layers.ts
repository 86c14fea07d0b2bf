/**
 * Partial pulls of zstd:chunked layers, the plan: for each missing layer
 * whose descriptor says zstd:chunked, its TOC (and tar-split) fetched by
 * Range and checked, the files and chunks the repository already holds found
 * through the content index, and what is left to fetch costed with the
 * transport's range merging; a layer whose partial pull would not save
 * enough is fetched whole. partial_rebuild.ts carries a plan out. Anything
 * that goes wrong with a layer's partial pull (no Range support, no or a bad
 * TOC, a lying digest, a diff_id mismatch) is a reason, and the caller fetches
 * that layer's whole blob instead ({@link fallsBack}). The compressed blob is
 * never stored.
 *
 * @module
 */
import { DigestMismatchError, FormatError, SizeMismatchError, TransportError, UnsafePathError } from "../errors.ts";
import { type ChunkedLayout, chunkedLayout } from "../chunked/annotations.ts";
import { type PartialPlan, planPartial, planStream, type StreamPiece } from "../chunked/partial_tar.ts";
import { checkTarSplit, readTarSplit } from "../chunked/tar_split.ts";
import { type ChunkedToc, readToc } from "../chunked/toc_reader.ts";
import { SKIPPABLE_HEADER } from "../compression/chunked_footer.ts";
import { type ContentChunk, type ContentIndex, contentIndex, type ContentObject } from "../repo/content_index.ts";
import type { LayerLimits } from "../repo/layer_writer.ts";
import type { Repository } from "../repo/repository.ts";
import { type ByteRange, DEFAULT_RANGE_POLICY, rangeBytes, type RangeStats } from "../transport/docker/byte_ranges.ts";
import type { ImageSource } from "../transport/source.ts";
import type { Digest } from "../util/digest.ts";
import type { ImageLayer } from "./pull_steps.ts";

/** Whether a pull fetches zstd:chunked layers partially: `auto` when it saves bytes, `never`. */
export type PartialMode = "auto" | "never";

/** A layer ready for a partial pull: its metadata fetched and checked, its plan made. */
export interface PartialLayer {
  layer: ImageLayer;
  layout: ChunkedLayout;
  toc: ChunkedToc;
  /** Absent in layers written before containers/storage 1.47: see `stream`. */
  tarSplit?: { bytes: Uint8Array; digest: Digest; length: number; uncompressedLength: number };
  /** Where the blob's content ends (its metadata starts). */
  contentEnd: number;
  plan: PartialPlan;
  /**
   * Without a tar-split: the content's frames in order, fetched or taken from
   * what is at hand (`plan.spans` are then the stretches to fetch).
   */
  stream?: StreamPiece[];
  /** Objects of the contents reused, by SHA-256 digest. */
  objects: Map<Digest, ContentObject>;
  /** Chunks of objects reused for frames of the other files, by SHA-256 digest. */
  chunks: Map<Digest, ContentChunk>;
  /** Bytes fetched for the TOC and tar-split. */
  metadataBytes: number;
  /** Bytes the frames will cost (spans merged as the transport merges them). */
  frameBytes: number;
}

/** Why a layer is not pulled partially (it is fetched whole). */
export interface NotPartial {
  layer: ImageLayer;
  reason: string;
  /** Bytes spent finding that out (the metadata fetched). */
  metadataBytes: number;
  /** Not worth a note: nothing of the layer is held (an unrelated image), so nothing was lost. */
  quiet?: boolean;
}

/** How each missing layer is pulled, as planned. */
export interface PartialPlans {
  partial: Map<Digest, PartialLayer>;
  /** Layers that are zstd:chunked but are fetched whole, and why (plain layers are not listed). */
  whole: Map<Digest, NotPartial>;
}

/**
 * A partial pull must fetch at most this share of the blob: past it, the
 * whole blob (one request, no rebuild) is the better deal.
 */
const WORTHWHILE = 0.9;

/**
 * Plans the partial pull of `layers` (missing ones): for each zstd:chunked
 * layer, its metadata fetched and checked, then reused files found through the
 * content index (made as needed). A layer whose partial pull would not fetch
 * fewer bytes than its blob is fetched whole.
 */
export async function planPartialLayers(
  repo: Repository,
  source: ImageSource,
  layers: readonly ImageLayer[],
  limits: LayerLimits,
): Promise<PartialPlans> {
  const plans: PartialPlans = { partial: new Map(), whole: new Map() };
  if (!source.blobRanges) return plans;
  let index: ContentIndex | undefined;
  for (const layer of layers) {
    const what = `layer ${layer.desc.digest}`;
    let layout: ChunkedLayout | undefined;
    try {
      layout = chunkedLayout(layer.desc.annotations, layer.desc.size, what);
    } catch (e) {
      plans.whole.set(layer.desc.digest, { layer, reason: errorText(e), metadataBytes: 0 });
      continue;
    }
    if (!layout) continue;
    // A repository that holds no content (a first pull) has nothing to reuse: no TOC is worth fetching.
    index ??= await contentIndex(repo);
    if (index.files.size === 0) break;
    const have = index;
    const stats: RangeStats = { requests: 0, bytes: 0, oneRangeAnswers: 0 };
    try {
      const meta = await fetchMetadata(source, layer, layout, limits, stats);
      const plan = planPartial(
        meta.toc,
        (d) => have.files.has(d.slice(7)),
        (d, size) => have.chunks.get(d.slice(7))?.size === size,
      );
      const objects = new Map<Digest, ContentObject>();
      const chunks = new Map<Digest, ContentChunk>();
      for (const e of meta.toc.entries) {
        const o = e.digest ? have.files.get(e.digest.slice(7)) : undefined;
        if (o && e.digest) objects.set(e.digest, o);
      }
      for (const { entry, frames } of plan.fetch) {
        entry.frames!.forEach((f, i) => {
          if (frames[i] === "chunk") chunks.set(f.digest, have.chunks.get(f.digest.slice(7))!);
        });
      }
      let stream: StreamPiece[] | undefined;
      if (!meta.tarSplit) {
        const gap = (source.rangePolicy ?? DEFAULT_RANGE_POLICY).gap;
        const planned = planStream(meta.toc, plan, (d) => have.files.has(d.slice(7)), meta.contentEnd, gap);
        stream = planned.pieces;
        plan.spans = planned.spans;
        plan.fetchBytes = planned.spans.reduce((n, r) => n + r.length, 0);
      }
      const frameBytes = rangeBytes(plan.spans, source.rangePolicy);
      const p: PartialLayer = {
        layer,
        layout,
        ...meta,
        plan,
        objects,
        chunks,
        ...(stream ? { stream } : {}),
        metadataBytes: stats.bytes,
        frameBytes,
      };
      const nothing = plan.reusedFiles + plan.reusedChunks === 0;
      if (nothing || stats.bytes + frameBytes > layer.desc.size * WORTHWHILE) {
        plans.whole.set(layer.desc.digest, {
          layer,
          quiet: nothing,
          reason: nothing
            ? "the repository holds none of its files"
            : `a partial pull would fetch ${stats.bytes + frameBytes} bytes of the blob's ${layer.desc.size} ` +
              `(${plan.files - plan.reusedFiles} of ${plan.files} files missing, ${plan.fetchBytes} bytes of frames)`,
          metadataBytes: stats.bytes,
        });
      } else {
        plans.partial.set(layer.desc.digest, p);
      }
    } catch (e) {
      if (!fallsBack(e)) throw e;
      plans.whole.set(layer.desc.digest, { layer, reason: errorText(e), metadataBytes: stats.bytes });
    }
  }
  return plans;
}

/** The TOC and tar-split of a layer, fetched by Range and checked against each other and the annotations. */
async function fetchMetadata(
  source: ImageSource,
  layer: ImageLayer,
  layout: ChunkedLayout,
  limits: LayerLimits,
  stats: RangeStats,
): Promise<Pick<PartialLayer, "toc" | "tarSplit" | "contentEnd">> {
  const what = `layer ${layer.desc.digest}`;
  const ranges: ByteRange[] = [{ offset: layout.toc.offset, length: layout.toc.length }];
  if (layout.tarSplit) ranges.push({ offset: layout.tarSplit.offset, length: layout.tarSplit.length });
  ranges.sort((a, b) => a.offset - b.offset);
  const parts = new Map<number, Uint8Array>(ranges.map((r) => [r.offset, new Uint8Array(r.length)]));
  let current = 0;
  for await (const piece of source.blobRanges!(layer.desc, ranges, stats)) {
    while (piece.offset >= ranges[current].offset + ranges[current].length) current++;
    const r = ranges[current];
    parts.get(r.offset)!.set(piece.bytes, piece.offset - r.offset);
  }
  const contentEnd = Math.min(layout.toc.offset, layout.tarSplit?.offset ?? Infinity) - SKIPPABLE_HEADER;
  const toc = readToc(parts.get(layout.toc.offset)!, layout, contentEnd, what);
  if (!layout.tarSplit) return { toc, contentEnd };
  const digest = toc.tarSplitDigest ?? layout.tarSplitDigest;
  if (!digest) throw new FormatError(`${what}: the tar-split's digest is given nowhere`);
  const tarSplit = {
    bytes: parts.get(layout.tarSplit.offset)!,
    digest,
    length: layout.tarSplit.length,
    uncompressedLength: layout.tarSplit.uncompressedLength,
  };
  checkTarSplit(toc, readTarSplit(tarSplit.bytes, tarSplit, what), limits.maxLayerSize, what);
  return { toc, tarSplit, contentEnd };
}

/** True for failures of a layer's partial pull that the whole blob may not have. */
export function fallsBack(e: unknown): boolean {
  return e instanceof FormatError || e instanceof DigestMismatchError || e instanceof SizeMismatchError ||
    e instanceof UnsafePathError || e instanceof TransportError || e instanceof RangeError;
}

/** An error as one line for a note. */
export function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
