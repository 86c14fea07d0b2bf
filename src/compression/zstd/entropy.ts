/**
 * The entropy coding layer of zstd (RFC 8878 section 4): FSE table descriptions
 * and decoding tables, Huffman tree descriptions and literal streams, and the
 * backward bit streams both are read from.
 *
 * Every reader here works on one byte array holding a whole block, with at
 * least {@link PAD} readable bytes before and after the block's bytes: bit
 * fields are loaded four bytes at a time, and a corrupt stream may read a
 * little past either end before the decoder notices. Errors are
 * {@link ZstdCorruption}s, which the frame decoder turns into a FormatError that
 * says where in the frame they happened.
 *
 * @module
 */

/** Readable bytes the block buffer keeps on each side of a block's bytes. */
export const PAD = 16;

/** Corrupt entropy-coded data; carries what was wrong, the frame decoder adds where. */
export class ZstdCorruption extends Error {
  override name = "ZstdCorruption";
}

/** Index of the highest set bit of a positive 32-bit number. */
export function highBit(n: number): number {
  return 31 - Math.clz32(n);
}

/** The `n` (at most 25) bits of `buf` starting at bit `pos`, counted from bit 0 of byte 0. */
export function bitsAt(buf: Uint8Array, pos: number, n: number): number {
  const i = pos >> 3;
  return ((buf[i] | (buf[i + 1] << 8) | (buf[i + 2] << 16) | (buf[i + 3] << 24)) >>> (pos & 7)) & ((1 << n) - 1);
}

/**
 * The bit position just below the end-of-stream marker of the backward bit
 * stream `buf[start, end)`: its last byte's highest set bit marks where the
 * stream's bits stop.
 */
export function backwardStart(buf: Uint8Array, start: number, end: number, what: string): number {
  if (end <= start) throw new ZstdCorruption(`empty ${what} bit stream`);
  const last = buf[end - 1];
  if (last === 0) throw new ZstdCorruption(`${what} bit stream has no end marker`);
  return (end - 1) * 8 + highBit(last);
}

/**
 * Reads `n` bits ending at `pos` of a backward stream whose first bit is at
 * `floor`, with bits below `floor` read as zeros (how a stream's last symbols are
 * decoded).
 */
function bitsBelow(buf: Uint8Array, pos: number, n: number, floor: number): number {
  if (pos >= floor) return bitsAt(buf, pos, n);
  const have = pos + n - floor;
  return have > 0 ? bitsAt(buf, floor, have) << (floor - pos) : 0;
}

/**
 * An FSE decoding table with, for each state, the symbol it decodes, how many
 * bits to read for the next state and the baseline to add them to. For sequence
 * codes it also holds what the symbol means: the value's baseline and how many
 * extra bits follow (see {@link withValues}).
 */
export class FseTable {
  accuracyLog = 0;
  readonly symbol: Uint8Array;
  readonly bits: Uint8Array;
  readonly next: Uint16Array;
  /** Baseline of the decoded value (sequence tables). */
  readonly valueBase: Uint32Array;
  /** Extra bits of the decoded value (sequence tables). */
  readonly valueBits: Uint8Array;

  constructor(maxLog: number) {
    const size = 1 << maxLog;
    this.symbol = new Uint8Array(size);
    this.bits = new Uint8Array(size);
    this.next = new Uint16Array(size);
    this.valueBase = new Uint32Array(size);
    this.valueBits = new Uint8Array(size);
  }

  /** Builds the table from a normalized distribution (RFC 8878 4.1.1). */
  build(norm: Int16Array, symbols: number, accuracyLog: number): this {
    const size = 1 << accuracyLog;
    const symbol = this.symbol;
    const nextState = new Uint16Array(symbols);
    let high = size - 1;
    for (let s = 0; s < symbols; s++) {
      if (norm[s] === -1) {
        symbol[high--] = s;
        nextState[s] = 1;
      } else {
        nextState[s] = norm[s];
      }
    }
    const step = (size >> 1) + (size >> 3) + 3;
    const mask = size - 1;
    let pos = 0;
    for (let s = 0; s < symbols; s++) {
      for (let i = 0; i < norm[s]; i++) {
        symbol[pos] = s;
        do pos = (pos + step) & mask; while (pos > high);
      }
    }
    if (pos !== 0) throw new ZstdCorruption("FSE distribution does not fill its table");
    for (let u = 0; u < size; u++) {
      const n = nextState[symbol[u]]++;
      const bits = accuracyLog - highBit(n);
      this.bits[u] = bits;
      this.next[u] = (n << bits) - size;
    }
    this.accuracyLog = accuracyLog;
    return this;
  }

  /** Makes a one-state table that always decodes `symbol` and reads nothing (RLE mode). */
  rle(symbol: number): this {
    this.accuracyLog = 0;
    this.symbol[0] = symbol;
    this.bits[0] = 0;
    this.next[0] = 0;
    return this;
  }

  /** Fills the value columns from per-code baselines and extra bit counts. */
  withValues(base: ArrayLike<number>, extra: ArrayLike<number>): this {
    const size = 1 << this.accuracyLog;
    for (let u = 0; u < size; u++) {
      const s = this.symbol[u];
      this.valueBase[u] = base[s];
      this.valueBits[u] = extra[s];
    }
    return this;
  }
}

/**
 * Reads an FSE table description (RFC 8878 4.1.1) from `buf[pos, end)` into
 * `norm` and returns [accuracy log, symbol count, position after it].
 */
export function readDistribution(
  buf: Uint8Array,
  pos: number,
  end: number,
  maxSymbol: number,
  maxLog: number,
  norm: Int16Array,
): [number, number, number] {
  if (pos >= end) throw new ZstdCorruption("FSE table description is missing");
  let bit = pos * 8;
  const endBit = end * 8;
  const accuracyLog = (buf[pos] & 15) + 5;
  bit += 4;
  if (accuracyLog > maxLog) throw new ZstdCorruption(`FSE accuracy log ${accuracyLog} is over ${maxLog}`);
  let remaining = (1 << accuracyLog) + 1;
  let threshold = 1 << accuracyLog;
  let nbBits = accuracyLog + 1;
  let s = 0;
  while (remaining > 1) {
    if (s > maxSymbol) throw new ZstdCorruption("FSE distribution has too many symbols");
    const max = 2 * threshold - 1 - remaining;
    const v = bitsAt(buf, bit, nbBits);
    let count: number;
    if ((v & (threshold - 1)) < max) {
      count = v & (threshold - 1);
      bit += nbBits - 1;
    } else {
      count = v & (2 * threshold - 1);
      if (count >= threshold) count -= max;
      bit += nbBits;
    }
    const prob = count - 1;
    norm[s++] = prob;
    remaining -= prob < 0 ? -prob : prob;
    if (remaining < 1) throw new ZstdCorruption("FSE distribution adds up to more than its table");
    if (prob === 0) {
      for (;;) {
        const repeat = bitsAt(buf, bit, 2);
        bit += 2;
        if (s + repeat > maxSymbol + 1) throw new ZstdCorruption("FSE distribution has too many symbols");
        for (let i = 0; i < repeat; i++) norm[s++] = 0;
        if (repeat !== 3) break;
        if (bit > endBit) throw new ZstdCorruption("FSE table description is truncated");
      }
    }
    while (remaining < threshold) {
      nbBits--;
      threshold >>= 1;
    }
    if (bit > endBit) throw new ZstdCorruption("FSE table description is truncated");
  }
  return [accuracyLog, s, (bit + 7) >> 3];
}

/** Most bits a Huffman code may have (RFC 8878 4.2.1). */
const HUF_MAX_BITS = 11;

/**
 * A Huffman decoding table: for each value of the next `maxBits` bits of a
 * stream, the literal they start with (high bits) and its code length (low 4).
 */
export class HuffmanTable {
  maxBits = 0;
  readonly entries = new Uint16Array(1 << HUF_MAX_BITS);
  readonly #weights = new Uint8Array(256);
  readonly #norm = new Int16Array(16);
  readonly #fse = new FseTable(6);

  /** Reads a Huffman tree description at `buf[pos, end)`, builds the table, returns the position after it. */
  read(buf: Uint8Array, pos: number, end: number): number {
    if (pos >= end) throw new ZstdCorruption("Huffman tree description is missing");
    const header = buf[pos++];
    const weights = this.#weights;
    let count: number;
    if (header >= 128) {
      count = header - 127;
      const bytes = (count + 1) >> 1;
      if (pos + bytes > end) throw new ZstdCorruption("Huffman tree description is truncated");
      for (let i = 0; i < count; i++) {
        const b = buf[pos + (i >> 1)];
        weights[i] = i & 1 ? b & 15 : b >> 4;
      }
      pos += bytes;
    } else {
      const stop = pos + header;
      if (stop > end) throw new ZstdCorruption("Huffman tree description is truncated");
      count = this.#fseWeights(buf, pos, stop);
      pos = stop;
    }
    this.#build(count);
    return pos;
  }

  /** Decodes FSE-compressed Huffman weights from `buf[pos, end)`; returns how many. */
  #fseWeights(buf: Uint8Array, pos: number, end: number): number {
    const [log, symbols, at] = readDistribution(buf, pos, end, HUF_MAX_BITS, 6, this.#norm);
    const t = this.#fse.build(this.#norm, symbols, log);
    const floor = at * 8;
    let bit = backwardStart(buf, at, end, "Huffman weights");
    bit -= log;
    let s1 = bitsBelow(buf, bit, log, floor);
    bit -= log;
    let s2 = bitsBelow(buf, bit, log, floor);
    if (bit < floor) throw new ZstdCorruption("Huffman weights bit stream is too short");
    const weights = this.#weights;
    let n = 0;
    // Two states take turns; when an update runs past the stream's first bit, the
    // other state's symbol is the last one.
    for (;;) {
      if (n >= 254) throw new ZstdCorruption("too many Huffman weights");
      weights[n++] = t.symbol[s1];
      bit -= t.bits[s1];
      s1 = t.next[s1] + bitsBelow(buf, bit, t.bits[s1], floor);
      if (bit < floor) {
        weights[n++] = t.symbol[s2];
        break;
      }
      weights[n++] = t.symbol[s2];
      bit -= t.bits[s2];
      s2 = t.next[s2] + bitsBelow(buf, bit, t.bits[s2], floor);
      if (bit < floor) {
        if (n >= 255) throw new ZstdCorruption("too many Huffman weights");
        weights[n++] = t.symbol[s1];
        break;
      }
    }
    return n;
  }

  /** Completes the weights of `count` literals with the implied last one and fills the decoding table. */
  #build(count: number): void {
    const weights = this.#weights;
    if (count > 255) throw new ZstdCorruption("too many Huffman weights");
    const rank = new Uint32Array(HUF_MAX_BITS + 2);
    let total = 0;
    for (let i = 0; i < count; i++) {
      const w = weights[i];
      if (w > HUF_MAX_BITS) throw new ZstdCorruption(`Huffman weight ${w} is over ${HUF_MAX_BITS}`);
      if (w > 0) total += 1 << (w - 1);
      rank[w]++;
    }
    if (total === 0) throw new ZstdCorruption("Huffman tree has no literal");
    const maxBits = highBit(total) + 1;
    if (maxBits > HUF_MAX_BITS) throw new ZstdCorruption("Huffman codes are longer than 11 bits");
    const rest = (1 << maxBits) - total;
    if ((rest & (rest - 1)) !== 0) throw new ZstdCorruption("Huffman weights do not complete a tree");
    const last = highBit(rest) + 1;
    weights[count] = last;
    rank[last]++;
    if (rank[1] === 0 || rank[1] & 1) throw new ZstdCorruption("Huffman weights do not complete a tree");
    const start = new Uint32Array(HUF_MAX_BITS + 2);
    let next = 0;
    for (let w = 1; w <= maxBits; w++) {
      start[w] = next;
      next += rank[w] << (w - 1);
    }
    const entries = this.entries;
    for (let s = 0; s <= count; s++) {
      const w = weights[s];
      if (w === 0) continue;
      const length = 1 << (w - 1);
      const entry = (s << 4) | (maxBits + 1 - w);
      const from = start[w];
      entries.fill(entry, from, from + length);
      start[w] = from + length;
    }
    this.maxBits = maxBits;
  }

  /**
   * Decodes the Huffman stream `buf[start, end)` into exactly `out[at, at + n)`;
   * the stream must be consumed to its first bit.
   */
  decode(buf: Uint8Array, start: number, end: number, out: Uint8Array, at: number, n: number): void {
    const maxBits = this.maxBits;
    const entries = this.entries;
    const floor = start * 8;
    let bit = backwardStart(buf, start, end, "Huffman");
    const stop = at + n;
    let o = at;
    // While at least maxBits remain, peek them directly; then zero-fill below the stream start.
    const fastFloor = floor + maxBits;
    const mask = (1 << maxBits) - 1;
    while (o < stop && bit >= fastFloor) {
      const p = bit - maxBits;
      const i = p >> 3;
      const e = entries[((buf[i] | (buf[i + 1] << 8) | (buf[i + 2] << 16)) >>> (p & 7)) & mask];
      out[o++] = e >> 4;
      bit -= e & 15;
    }
    while (o < stop) {
      const e = entries[bitsBelow(buf, bit - maxBits, maxBits, floor)];
      out[o++] = e >> 4;
      bit -= e & 15;
      if (bit < floor) throw new ZstdCorruption("Huffman stream is too short for its literals");
    }
    if (bit !== floor) throw new ZstdCorruption("Huffman stream has bits left after its literals");
  }
}
