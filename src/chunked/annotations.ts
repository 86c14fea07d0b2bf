/**
 * The layer descriptor annotations of a zstd:chunked blob, as
 * containers/storage sets them (`pkg/chunked/internal/minimal/compression.go`):
 * the TOC's digest (of its compressed bytes) and position, the tar-split's
 * position, and the names earlier versions used (`io.containers.zstd-chunked.*`
 * before 2022, which skopeo 1.9 and podman 4.x still write; a tar-split digest
 * annotation in 2023). Reading them gives a validated {@link ChunkedLayout};
 * annotations that describe a blob's bytes are dropped when the blob is
 * written anew.
 *
 * @module
 */
import { FormatError } from "../errors.ts";
import { type BlobRange, MANIFEST_TYPE_CRFS, SKIPPABLE_HEADER } from "../compression/chunked_footer.ts";
import type { ChunkedFooter } from "../compression/chunked_footer.ts";
import { type Digest, parseDigest } from "../util/digest.ts";

/** The annotation names containers/storage writes now. */
export const ChunkedAnnotation = {
  tocDigest: "io.github.containers.zstd-chunked.manifest-checksum",
  tocPosition: "io.github.containers.zstd-chunked.manifest-position",
  tarSplitPosition: "io.github.containers.zstd-chunked.tarsplit-position",
  /** Written by containers/storage 1.47 to 1.49; since then the TOC carries the digest. */
  tarSplitDigest: "io.github.containers.zstd-chunked.tarsplit-checksum",
} as const;

/** The names before containers/storage 1.44 (2022): TOC only, no tar-split. */
const LEGACY = {
  tocDigest: "io.containers.zstd-chunked.manifest-checksum",
  tocPosition: "io.containers.zstd-chunked.manifest-position",
} as const;

/** Prefixes and names of annotations that describe a blob's bytes (zstd:chunked and eStargz TOCs). */
const BLOB_ANNOTATIONS = [
  "io.github.containers.zstd-chunked.",
  "io.containers.zstd-chunked.",
  "containerd.io/snapshot/stargz/toc.digest",
  "io.containers.estargz.uncompressed-size",
];

/** Limits on what the annotations may declare. */
export const LAYOUT_LIMITS = {
  /** The TOC, compressed and not (containers/storage's own limit for both is 150 MiB). */
  tocCompressed: 64 << 20,
  tocUncompressed: 150 << 20,
  /** The tar-split, compressed (held whole to be verified) and not (only ever streamed). */
  tarSplitCompressed: 256 << 20,
  tarSplitUncompressed: 8 * 2 ** 30,
};

/** Where a zstd:chunked blob keeps its metadata, as its annotations say. */
export interface ChunkedLayout {
  /** Digest of the compressed TOC. */
  tocDigest: Digest;
  toc: BlobRange;
  /** Absent for blobs written before tar-split was added (2023). */
  tarSplit?: BlobRange;
  /** The tar-split's digest from the 2023 annotation (newer TOCs carry it themselves). */
  tarSplitDigest?: Digest;
  /** Which annotation names it came from. */
  names: "current" | "legacy";
}

/** The annotations of a blob written by deltaship (the current names). */
export function chunkedAnnotations(tocDigest: Digest, toc: BlobRange, tarSplit: BlobRange): Record<string, string> {
  return {
    [ChunkedAnnotation.tocDigest]: tocDigest,
    [ChunkedAnnotation.tocPosition]: `${toc.offset}:${toc.length}:${toc.uncompressedLength}:${MANIFEST_TYPE_CRFS}`,
    [ChunkedAnnotation.tarSplitPosition]: `${tarSplit.offset}:${tarSplit.length}:${tarSplit.uncompressedLength}`,
  };
}

/** `annotations` without those that describe a blob's bytes (undefined when none is left). */
export function withoutBlobAnnotations(
  annotations: Record<string, string> | undefined,
): Record<string, string> | undefined {
  if (!annotations) return undefined;
  const kept = Object.entries(annotations).filter(([k]) => !BLOB_ANNOTATIONS.some((p) => k.startsWith(p)));
  return kept.length > 0 ? Object.fromEntries(kept) : undefined;
}

/**
 * The layout of a zstd:chunked blob of `blobSize` bytes from its layer
 * descriptor's annotations: undefined when they do not say zstd:chunked, a
 * FormatError (naming `what`) when they say it wrongly: a position that is not
 * decimal numbers, a range outside the blob or over another, a TOC type other
 * than 1, a size past {@link LAYOUT_LIMITS}, both name sets disagreeing.
 */
export function chunkedLayout(
  annotations: Record<string, string> | undefined,
  blobSize: number,
  what: string,
): ChunkedLayout | undefined {
  if (!annotations) return undefined;
  const current = annotations[ChunkedAnnotation.tocPosition] !== undefined ||
    annotations[ChunkedAnnotation.tocDigest] !== undefined;
  const legacy = annotations[LEGACY.tocPosition] !== undefined || annotations[LEGACY.tocDigest] !== undefined;
  if (!current && !legacy) return undefined;
  const bad = (detail: string): never => {
    throw new FormatError(`${what}: zstd:chunked annotations: ${detail}`);
  };
  const names = current ? ChunkedAnnotation : LEGACY;
  if (current && legacy) {
    for (const k of ["tocDigest", "tocPosition"] as const) {
      if (annotations[LEGACY[k]] !== undefined && annotations[LEGACY[k]] !== annotations[ChunkedAnnotation[k]]) {
        bad(`${LEGACY[k]} and ${ChunkedAnnotation[k]} disagree`);
      }
    }
  }
  const digestText = annotations[names.tocDigest] ?? bad(`${names.tocDigest} is missing`);
  const positionText = annotations[names.tocPosition] ?? bad(`${names.tocPosition} is missing`);
  const tocDigest = checkedDigest(digestText, names.tocDigest, bad);
  const [offset, length, uncompressedLength, type] = numbers(positionText, 4, names.tocPosition, bad);
  if (type !== MANIFEST_TYPE_CRFS) bad(`TOC type ${type} (only ${MANIFEST_TYPE_CRFS} exists)`);
  const toc = { offset, length, uncompressedLength };
  checkRange(toc, "TOC", blobSize, LAYOUT_LIMITS.tocCompressed, LAYOUT_LIMITS.tocUncompressed, bad);
  const layout: ChunkedLayout = { tocDigest, toc, names: current ? "current" : "legacy" };
  const tarSplitText = current ? annotations[ChunkedAnnotation.tarSplitPosition] : undefined;
  if (tarSplitText !== undefined) {
    const [offset, length, uncompressedLength] = numbers(tarSplitText, 3, ChunkedAnnotation.tarSplitPosition, bad);
    const tarSplit = { offset, length, uncompressedLength };
    checkRange(
      tarSplit,
      "tar-split",
      blobSize,
      LAYOUT_LIMITS.tarSplitCompressed,
      LAYOUT_LIMITS.tarSplitUncompressed,
      bad,
    );
    if (overlaps(toc, tarSplit)) bad("the TOC and the tar-split overlap");
    layout.tarSplit = tarSplit;
    const tarSplitDigest = annotations[ChunkedAnnotation.tarSplitDigest];
    if (tarSplitDigest !== undefined) {
      layout.tarSplitDigest = checkedDigest(tarSplitDigest, ChunkedAnnotation.tarSplitDigest, bad);
    }
  }
  return layout;
}

/**
 * Checks that a blob's footer agrees with its annotations (a FormatError
 * naming `what` when it does not): same TOC range, and the same tar-split range
 * where the footer has one.
 */
export function checkFooterAgrees(layout: ChunkedLayout, footer: ChunkedFooter, what: string): void {
  const same = (a: BlobRange, b: BlobRange) =>
    a.offset === b.offset && a.length === b.length && a.uncompressedLength === b.uncompressedLength;
  const differs = !same(layout.toc, footer.toc) || footer.manifestType !== MANIFEST_TYPE_CRFS ||
    (footer.tarSplit !== undefined && (layout.tarSplit === undefined || !same(layout.tarSplit, footer.tarSplit)));
  if (differs) throw new FormatError(`${what}: the zstd:chunked footer disagrees with the layer's annotations`);
}

/** Metadata ranges start at least this far into a blob: a frame of content, then the skippable header. */
const MIN_OFFSET = SKIPPABLE_HEADER;

function checkRange(
  r: BlobRange,
  name: string,
  blobSize: number,
  maxLength: number,
  maxUncompressed: number,
  bad: (detail: string) => never,
): void {
  if (r.offset < MIN_OFFSET || r.length === 0 || r.offset + r.length > blobSize) {
    bad(`the ${name} at ${r.offset}+${r.length} is not inside the blob of ${blobSize} bytes`);
  }
  if (r.length > maxLength) bad(`the ${name} of ${r.length} compressed bytes is over the limit of ${maxLength}`);
  if (r.uncompressedLength > maxUncompressed) {
    bad(`the ${name} of ${r.uncompressedLength} bytes is over the limit of ${maxUncompressed}`);
  }
}

function overlaps(a: BlobRange, b: BlobRange): boolean {
  // Each range has its skippable frame header just before it.
  return a.offset - SKIPPABLE_HEADER < b.offset + b.length && b.offset - SKIPPABLE_HEADER < a.offset + a.length;
}

function numbers(text: string, count: number, name: string, bad: (detail: string) => never): number[] {
  const parts = text.split(":");
  if (parts.length !== count || !parts.every((p) => /^[0-9]{1,15}$/.test(p))) {
    bad(`${name} is not ${count} decimal numbers separated by ':' (${JSON.stringify(text.slice(0, 80))})`);
  }
  return parts.map(Number);
}

function checkedDigest(text: string, name: string, bad: (detail: string) => never): Digest {
  try {
    parseDigest(text, name);
  } catch {
    bad(`${name} is not a digest (${JSON.stringify(text.slice(0, 80))})`);
  }
  return text;
}
