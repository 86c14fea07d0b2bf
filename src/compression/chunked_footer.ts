/**
 * The framing of a zstd:chunked blob past its content: zstd skippable frames
 * (RFC 8878 3.1.2: every zstd reader passes over them) holding the TOC, the
 * tar-split and, last, a footer that says where the other two are. As
 * containers/storage writes them (`WriteZstdChunkedManifest` and
 * `footerDataToBlob` in `pkg/chunked/internal/minimal/compression.go`), and as
 * its earlier versions did, which are still in registries:
 *
 * - since v1.50 (2023): 64 bytes, little-endian TOC offset, compressed and
 *   uncompressed length, manifest type (1), tar-split offset, compressed and
 *   uncompressed length, then the magic `GNUlInUx`;
 * - v1.47 to v1.49: 56 bytes, the first four numbers, the magic `GnUlInUx`,
 *   then 16 zero bytes (the tar-split fields were never filled in);
 * - before (skopeo 1.9, podman 4.x): 40 bytes, the four numbers and `GnUlInUx`.
 *
 * containers/storage itself never reads the footer (the layer's annotations
 * say the same and carry the TOC's digest): it tells a zstd:chunked blob from
 * its last bytes alone, and must agree with the annotations.
 *
 * @module
 */

/** The magic of a skippable frame as containers/storage writes them (the first of the sixteen). */
const SKIPPABLE = [0x50, 0x2a, 0x4d, 0x18];
/** Bytes of a skippable frame's header: magic and payload length. */
export const SKIPPABLE_HEADER = 8;
/** The footer's magic since containers/storage 1.50, and before it. */
const MAGIC = [0x47, 0x4e, 0x55, 0x6c, 0x49, 0x6e, 0x55, 0x78]; // "GNUlInUx"
const OLD_MAGIC = [0x47, 0x6e, 0x55, 0x6c, 0x49, 0x6e, 0x55, 0x78]; // "GnUlInUx"
/** Footer payload sizes: current, v1.47-1.49, earlier. */
const FOOTER = 64;
const FOOTER_56 = 56;
const FOOTER_40 = 40;
/** The most bytes at a blob's end that {@link parseChunkedFooter} looks at. */
export const FOOTER_TAIL = SKIPPABLE_HEADER + FOOTER;
/** The only TOC format there is ("CRFS"). */
export const MANIFEST_TYPE_CRFS = 1;

/** A stretch of a blob holding compressed metadata. */
export interface BlobRange {
  offset: number;
  /** Its compressed length, and what it decompresses to. */
  length: number;
  uncompressedLength: number;
}

/** What a footer says. */
export interface ChunkedFooter {
  /** The footer's layout: its payload size (64 now, 56 or 40 from older writers). */
  size: 64 | 56 | 40;
  toc: BlobRange;
  manifestType: number;
  /** Absent in the older layouts. */
  tarSplit?: BlobRange;
}

/** The header of a skippable frame whose payload is `length` bytes. */
export function skippableHeader(length: number): Uint8Array {
  if (!Number.isSafeInteger(length) || length < 0 || length > 0xffffffff) {
    throw new RangeError(`a skippable frame cannot hold ${length} bytes`);
  }
  const out = new Uint8Array(SKIPPABLE_HEADER);
  out.set(SKIPPABLE);
  new DataView(out.buffer).setUint32(4, length, true);
  return out;
}

/** The footer frame (header and 64-byte payload) as containers/storage writes it now. */
export function chunkedFooterFrame(toc: BlobRange, tarSplit: BlobRange): Uint8Array {
  const out = new Uint8Array(SKIPPABLE_HEADER + FOOTER);
  out.set(skippableHeader(FOOTER));
  const view = new DataView(out.buffer, SKIPPABLE_HEADER);
  const fields = [
    toc.offset,
    toc.length,
    toc.uncompressedLength,
    MANIFEST_TYPE_CRFS,
    tarSplit.offset,
    tarSplit.length,
    tarSplit.uncompressedLength,
  ];
  fields.forEach((v, i) => view.setBigUint64(i * 8, BigInt(v), true));
  out.set(MAGIC, SKIPPABLE_HEADER + FOOTER - 8);
  return out;
}

/**
 * The footer at the end of a blob, from its last bytes (`tail`, up to
 * {@link FOOTER_TAIL} of them), or undefined when there is none. Numbers past
 * 2^53 are refused as no footer: no blob is that large.
 */
export function parseChunkedFooter(tail: Uint8Array): ChunkedFooter | undefined {
  const ends = (magic: number[]) => tail.length >= 8 && magic.every((b, i) => tail[tail.length - 8 + i] === b);
  if (ends(MAGIC)) return layout(tail, FOOTER, true);
  if (ends(OLD_MAGIC)) return layout(tail, FOOTER_40, false);
  // v1.47-1.49: the old magic 16 bytes before the end, zeros after it
  const at = tail.length - 24;
  if (at >= 0 && OLD_MAGIC.every((b, i) => tail[at + i] === b) && tail.subarray(at + 8).every((b) => b === 0)) {
    return layout(tail, FOOTER_56, false);
  }
  return undefined;
}

function layout(tail: Uint8Array, size: 64 | 56 | 40, withTarSplit: boolean): ChunkedFooter | undefined {
  const start = tail.length - size - SKIPPABLE_HEADER;
  if (start < 0) return undefined;
  const view = new DataView(tail.buffer, tail.byteOffset + start, size + SKIPPABLE_HEADER);
  if (!SKIPPABLE.every((b, i) => view.getUint8(i) === b) || view.getUint32(4, true) !== size) return undefined;
  const n = (i: number) => {
    const v = view.getBigUint64(SKIPPABLE_HEADER + i * 8, true);
    return v > BigInt(Number.MAX_SAFE_INTEGER) ? NaN : Number(v);
  };
  const fields = [0, 1, 2, 3, 4, 5, 6].map((i) => (i < 4 || withTarSplit ? n(i) : 0));
  if (fields.some((v) => Number.isNaN(v))) return undefined;
  const footer: ChunkedFooter = {
    size,
    toc: { offset: fields[0], length: fields[1], uncompressedLength: fields[2] },
    manifestType: fields[3],
  };
  if (withTarSplit && fields[4] > 0) {
    footer.tarSplit = { offset: fields[4], length: fields[5], uncompressedLength: fields[6] };
  }
  return footer;
}
