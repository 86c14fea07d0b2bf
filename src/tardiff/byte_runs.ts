/**
 * The interpreter's byte runs in JavaScript: short copies by hand, and
 * AddData's bytewise sum four bytes at a time (a carry-free SWAR add). They
 * serve where add_kernel.ts's WebAssembly arenas are not available, and for
 * runs too short to be worth a call into one.
 *
 * @module
 */
const LOW7 = 0x7f7f7f7f;
const HIGH1 = 0x80808080 | 0;

/** Copies `n` bytes; short runs by hand, which beats making a subarray for them. */
export function copyInto(out: Uint8Array, o: number, data: Uint8Array, d: number, n: number): void {
  if (n < 48) {
    for (let i = 0; i < n; i++) out[o + i] = data[d + i];
  } else {
    out.set(data.subarray(d, d + n), o);
  }
}

/** A DataView of exactly the bytes of `bytes`. */
export function viewOf(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/**
 * Adds `n` bytes of `src` from `s` onto `out` from `o`, bytewise modulo 256,
 * four at a time through unaligned DataView words (`outView` and `srcView` are
 * {@link viewOf} `out` and `src`): (a & 0x7f..) + (b & 0x7f..) cannot carry
 * from one byte into the next, and XOR puts the top bits back.
 */
export function addBytes(
  out: Uint8Array,
  outView: DataView,
  o: number,
  src: Uint8Array,
  srcView: DataView,
  s: number,
  n: number,
): void {
  let x = 0;
  for (; x + 4 <= n; x += 4) {
    const a = outView.getInt32(o + x, true);
    const b = srcView.getInt32(s + x, true);
    outView.setInt32(o + x, ((a & LOW7) + (b & LOW7)) ^ ((a ^ b) & HIGH1), true);
  }
  for (; x < n; x++) out[o + x] += src[s + x];
}
