/**
 * Unsigned LEB128 varints, as tar-diff and deltaship's layer records use them.
 * Values are JavaScript numbers, so at most 2^53 - 1.
 *
 * @module
 */

/** Most bytes a 64-bit varint can take. */
export const MAX_VARINT_BYTES = 10;

/** Writes `value` at `out[offset]`; returns the offset after it. `out` needs 10 bytes of room. */
export function writeVarint(out: Uint8Array, offset: number, value: number): number {
  while (value >= 0x80) {
    out[offset++] = (value % 0x80) | 0x80;
    value = Math.floor(value / 0x80);
  }
  out[offset++] = value;
  return offset;
}

/** The encoded length of `value`. */
export function varintLength(value: number): number {
  let n = 1;
  while (value >= 0x80) {
    value = Math.floor(value / 0x80);
    n++;
  }
  return n;
}
