/**
 * The tar-diff format (`application/vnd.tar-diff`), version 1: the 8-byte magic
 * `tardf1\n\0`, then one zstd stream of operations, each an op byte, an unsigned
 * LEB128 size, and for Data, Open and AddData `size` bytes of data. Shared by the
 * interpreter (apply) and the encoder (create).
 *
 * @module
 */

/** The first eight bytes of every version-1 tar-diff. */
export const TARDIFF_MAGIC: Uint8Array = new TextEncoder().encode("tardf1\n\0");

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
} as const;

/** Longest Open path accepted (as reference readers do). */
export const MAX_OPEN_NAME = 4096;

/** Largest AddData accepted (as reference readers do). */
export const MAX_ADD_DATA = 100 << 20;
