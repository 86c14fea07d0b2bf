/**
 * The tar-diff format (`application/vnd.tar-diff`): the 8-byte magic
 * `tardf1\n\0` (version 1) or `tardf2\n\0` (version 2, oci-delta 0.6 and later),
 * then one zstd stream of operations, each an op byte, an unsigned LEB128 size,
 * and for Data, Open, AddData and ZstdDict `size` bytes of data. Version 2 adds
 * only ZstdDict. Shared by the interpreter (apply) and the encoder (create).
 *
 * @module
 */

/** The first eight bytes of every version-1 tar-diff. */
export const TARDIFF_MAGIC: Uint8Array = new TextEncoder().encode("tardf1\n\0");

/** The first eight bytes of every version-2 tar-diff (which may hold ZstdDict ops). */
export const TARDIFF_MAGIC_V2: Uint8Array = new TextEncoder().encode("tardf2\n\0");

/** Media type of tar-diff blobs in an oci-delta artifact. */
export const TARDIFF_MEDIA_TYPE = "application/vnd.tar-diff";

/** Operation codes. */
export const Op = {
  /** Emit the `size` data bytes that follow. */
  Data: 0,
  /** The data (a UTF-8 path in the source) becomes the current source file, at position 0. */
  Open: 1,
  /** Emit `size` bytes of the current source file from its position; advance it. */
  Copy: 2,
  /** Emit source bytes plus the `size` data bytes, bytewise modulo 256; advance the source. */
  AddData: 3,
  /** Set the source position to `size`. */
  Seek: 4,
  /**
   * Version 2 only: the data is one zstd frame, decompressed with the whole
   * current source file (from offset 0, whatever the position) as a
   * raw-content dictionary; emit the result. The position is then the file's end.
   */
  ZstdDict: 5,
} as const;

/** Longest Open path accepted (as reference readers do). */
export const MAX_OPEN_NAME = 4096;

/**
 * Largest AddData current reference readers accept, and the largest the encoder
 * writes. deltaship reads larger ones (tar-diff 0.1.x wrote one per bsdiff span,
 * unbounded), streamed in bounded chunks, up to the layer size limit.
 */
export const MAX_ADD_DATA = 100 << 20;
