/**
 * The interpreter's byte runs in JavaScript: short copies by hand, and
 * AddData's bytewise sum four bytes at a time (a carry-free SWAR add). They
 * serve where add_kernel.ts's WebAssembly arenas are not available, and for
 * runs too short to be worth a call into one.
 *
 * @module
 */
/** The low seven bits of each byte of a word. */
export const LOW7 = 0x7f7f7f7f;
/** The top bit of each byte of a word. */
export const HIGH1 = 0x80808080 | 0;

/** Copies `n` bytes; short runs by hand, which beats making a subarray for them. */
export function copyInto(out: Uint8Array, o: number, data: Uint8Array, d: number, n: number): void {
  if (n < 48) {
    for (let i = 0; i < n; i++) out[o + i] = data[d + i];
  } else {
    out.set(data.subarray(d, d + n), o);
  }
}

/**
 * Adds `n` bytes of `data` from `d` onto `out` from `o`, bytewise modulo 256.
 * Whole aligned words go four bytes at a time: (a & 0x7f..) + (b & 0x7f..) cannot
 * carry from one byte into the next, and XOR puts the top bits back.
 */
export function addInto(
  out: Uint8Array,
  out32: Int32Array,
  o: number,
  data: Uint8Array,
  d: number,
  n: number,
  scratch: Uint8Array,
  scratch32: Int32Array,
): void {
  const end = o + n;
  if (n < 48) {
    for (; o < end; o++, d++) out[o] += data[d];
    return;
  }
  for (; o < end && (o & 3) !== 0; o++, d++) out[o] += data[d];
  const words = (end - o) >>> 2;
  if (words > 0) {
    scratch.set(data.subarray(d, d + words * 4));
    let w = o >>> 2;
    for (let i = 0; i < words; i++, w++) {
      const a = out32[w];
      const b = scratch32[i];
      out32[w] = ((a & LOW7) + (b & LOW7)) ^ ((a ^ b) & HIGH1);
    }
    o += words * 4;
    d += words * 4;
  }
  for (; o < end; o++, d++) out[o] += data[d];
}
