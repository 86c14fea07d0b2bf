/**
 * CRC-64 with the ISO polynomial, as Go's `hash/crc64` computes it with
 * `crc64.MakeTable(crc64.ISO)` (reflected, initial and final value all ones):
 * tar-split records it for every file of a layer. In two 32-bit halves, since
 * JavaScript has no fast 64-bit integers.
 *
 * @module
 */

/** The ISO polynomial, reflected: 0xD800000000000000 (only its high half is non-zero). */
const POLY_HI = 0xd8000000;

/**
 * Slicing by eight: table `n` advances a byte by `n` more bytes, so eight bytes
 * go in one step (twice the speed of a byte at a time, measured). Each table in
 * high and low halves.
 */
const HI: Uint32Array[] = [];
const LO: Uint32Array[] = [];
for (let n = 0; n < 8; n++) {
  HI.push(new Uint32Array(256));
  LO.push(new Uint32Array(256));
}
for (let i = 0; i < 256; i++) {
  let hi = 0;
  let lo = i;
  for (let k = 0; k < 8; k++) {
    const bit = lo & 1;
    lo = ((lo >>> 1) | ((hi & 1) << 31)) >>> 0;
    hi = bit ? ((hi >>> 1) ^ POLY_HI) >>> 0 : hi >>> 1;
  }
  HI[0][i] = hi;
  LO[0][i] = lo;
}
for (let n = 1; n < 8; n++) {
  for (let i = 0; i < 256; i++) {
    const x = LO[n - 1][i] & 0xff;
    HI[n][i] = (HI[n - 1][i] >>> 8) ^ HI[0][x];
    LO[n][i] = ((LO[n - 1][i] >>> 8) | (HI[n - 1][i] << 24)) ^ LO[0][x];
  }
}
const [H0, H1, H2, H3, H4, H5, H6, H7] = HI;
const [L0, L1, L2, L3, L4, L5, L6, L7] = LO;

/** A running CRC-64/ISO. */
export class Crc64 {
  // The register, inverted (Go inverts before and after each update).
  #hi = 0xffffffff;
  #lo = 0xffffffff;

  /** Adds bytes. */
  update(data: Uint8Array): void {
    let hi = this.#hi;
    let lo = this.#lo;
    let i = 0;
    const end8 = data.length - (data.length % 8);
    for (; i < end8; i += 8) {
      lo ^= data[i] | (data[i + 1] << 8) | (data[i + 2] << 16) | (data[i + 3] << 24);
      hi ^= data[i + 4] | (data[i + 5] << 8) | (data[i + 6] << 16) | (data[i + 7] << 24);
      const a = lo & 0xff, b = (lo >>> 8) & 0xff, c = (lo >>> 16) & 0xff, d = lo >>> 24;
      const e = hi & 0xff, f = (hi >>> 8) & 0xff, g = (hi >>> 16) & 0xff, h = hi >>> 24;
      hi = H7[a] ^ H6[b] ^ H5[c] ^ H4[d] ^ H3[e] ^ H2[f] ^ H1[g] ^ H0[h];
      lo = L7[a] ^ L6[b] ^ L5[c] ^ L4[d] ^ L3[e] ^ L2[f] ^ L1[g] ^ L0[h];
    }
    for (; i < data.length; i++) {
      const x = (lo ^ data[i]) & 0xff;
      lo = ((lo >>> 8) | (hi << 24)) ^ L0[x];
      hi = (hi >>> 8) ^ H0[x];
    }
    this.#hi = hi >>> 0;
    this.#lo = lo >>> 0;
  }

  /** The checksum as Go's `Sum(nil)` gives it: eight bytes, big-endian. */
  sum(): Uint8Array {
    const out = new Uint8Array(8);
    const view = new DataView(out.buffer);
    view.setUint32(0, ~this.#hi >>> 0);
    view.setUint32(4, ~this.#lo >>> 0);
    return out;
  }
}
