/**
 * The block layer of the zstd patch encoder (`zstd_dict_encode.ts`): one
 * block's sequences written as zstd does (RFC 8878 3.1.1.3), with raw literals
 * and the three predefined FSE tables, or the block stored raw or as RLE when
 * that is smaller; and the growable buffer the frame is written into.
 *
 * @module
 */
import { LL_BASE, LL_BITS, LL_PREDEFINED, ML_BASE, ML_BITS, ML_PREDEFINED, OF_PREDEFINED } from "./tables.ts";

/** The FSE encoding table of a normalized distribution (RFC 8878 4.1), as libzstd builds it. */
class FseEncoder {
  readonly stateTable: Uint16Array;
  readonly deltaNbBits: Int32Array;
  readonly deltaFindState: Int32Array;

  constructor(norm: readonly number[], readonly log: number) {
    const size = 1 << log;
    const symbols = norm.length;
    const spread = new Uint8Array(size);
    const cumul = new Int32Array(symbols + 1);
    let high = size - 1;
    for (let s = 0; s < symbols; s++) {
      if (norm[s] === -1) {
        cumul[s + 1] = cumul[s] + 1;
        spread[high--] = s;
      } else {
        cumul[s + 1] = cumul[s] + norm[s];
      }
    }
    const step = (size >> 1) + (size >> 3) + 3;
    let pos = 0;
    for (let s = 0; s < symbols; s++) {
      for (let i = 0; i < norm[s]; i++) {
        spread[pos] = s;
        do pos = (pos + step) & (size - 1); while (pos > high);
      }
    }
    this.stateTable = new Uint16Array(size);
    const next = cumul.slice();
    for (let u = 0; u < size; u++) this.stateTable[next[spread[u]]++] = size + u;
    this.deltaNbBits = new Int32Array(symbols);
    this.deltaFindState = new Int32Array(symbols);
    let total = 0;
    for (let s = 0; s < symbols; s++) {
      const n = norm[s];
      if (n === -1 || n === 1) {
        this.deltaNbBits[s] = (log << 16) - size;
        this.deltaFindState[s] = total - 1;
        total++;
      } else if (n > 1) {
        const maxBitsOut = log - (31 - Math.clz32(n - 1));
        this.deltaNbBits[s] = (maxBitsOut << 16) - (n << maxBitsOut);
        this.deltaFindState[s] = total - n;
        total += n;
      } else {
        this.deltaNbBits[s] = ((log + 1) << 16) - size;
      }
    }
  }

  /** The first state, for the last symbol of the stream (FSE writes backwards). */
  init(symbol: number): number {
    const nbBitsOut = (this.deltaNbBits[symbol] + (1 << 15)) >> 16;
    const value = (nbBitsOut << 16) - this.deltaNbBits[symbol];
    return this.stateTable[(value >> nbBitsOut) + this.deltaFindState[symbol]];
  }
}

const LL_FSE = new FseEncoder(LL_PREDEFINED, 6);
const ML_FSE = new FseEncoder(ML_PREDEFINED, 6);
const OF_FSE = new FseEncoder(OF_PREDEFINED, 5);

/** Code of every literal length (0 to 131071) and match length (3 to 131074), from the tables' baselines. */
function codeTable(base: readonly number[], bits: readonly number[], size: number): Uint8Array {
  const table = new Uint8Array(size);
  base.forEach((b, code) => table.fill(code, b, Math.min(size, b + 2 ** bits[code])));
  return table;
}
const LL_CODE = codeTable(LL_BASE, LL_BITS, 1 << 17);
const ML_CODE = codeTable(ML_BASE, ML_BITS, (1 << 17) + 3);

/** A forward bit stream, least significant bit first, as zstd's backward readers expect it. */
class BitWriter {
  out: Uint8Array;
  pos: number;
  #acc = 0;
  #bits = 0;

  constructor(out: Uint8Array, pos: number) {
    this.out = out;
    this.pos = pos;
  }

  /** Adds the low `n` bits of `value` (n at most 24). */
  add(value: number, n: number): void {
    this.#acc |= (value & ((1 << n) - 1)) << this.#bits;
    this.#bits += n;
    while (this.#bits >= 8) {
      this.out[this.pos++] = this.#acc & 0xff;
      this.#acc >>>= 8;
      this.#bits -= 8;
    }
  }

  /** Adds up to 32 bits, in two parts. */
  addLong(value: number, n: number): void {
    if (n <= 24) return this.add(value, n);
    this.add(value & 0xffffff, 24);
    this.add(Math.floor(value / 0x1000000), n - 24);
  }

  /** Ends the stream: a 1 bit, then padding to the byte. Returns the position after it. */
  close(): number {
    this.add(1, 1);
    if (this.#bits > 0) this.out[this.pos++] = this.#acc & 0xff;
    return this.pos;
  }
}

/** A growable byte buffer for the frame. */
export class Output {
  bytes: Uint8Array;
  length = 0;

  constructor(capacity: number) {
    this.bytes = new Uint8Array(Math.max(capacity, 64));
  }

  /** Makes room for `n` more bytes. */
  room(n: number): void {
    if (this.length + n <= this.bytes.length) return;
    const bigger = new Uint8Array(Math.max(this.bytes.length * 2, this.length + n));
    bigger.set(this.bytes.subarray(0, this.length));
    this.bytes = bigger;
  }

  /** Appends `src[from, to)`. */
  put(src: Uint8Array, from: number, to: number): void {
    this.room(to - from);
    this.bytes.set(src.subarray(from, to), this.length);
    this.length += to - from;
  }

  /** Appends a block header (RFC 8878 3.1.1.2). */
  blockHeader(last: boolean, type: number, size: number): void {
    this.room(3);
    const v = (last ? 1 : 0) | (type << 1) | (size << 3);
    this.bytes[this.length++] = v & 0xff;
    this.bytes[this.length++] = (v >>> 8) & 0xff;
    this.bytes[this.length++] = (v >>> 16) & 0xff;
  }
}

/** One block's parse: its sequences (literal length, match length, offset code) and literals. */
export interface Block {
  litLen: Int32Array;
  matchLen: Int32Array;
  offBase: Int32Array;
  nSeq: number;
  lits: Uint8Array;
  nLits: number;
}

/**
 * Writes one block: compressed (raw literals, predefined sequence tables), or
 * raw / RLE when that is smaller. Returns whether it went out compressed.
 */
export function writeBlock(
  out: Output,
  history: Uint8Array,
  start: number,
  end: number,
  last: boolean,
  block: Block,
  scratch: Uint8Array,
): boolean {
  const size = end - start;
  let rle = size > 1;
  for (let i = start + 1; rle && i < end; i++) rle = history[i] === history[start];
  if (rle) {
    out.blockHeader(last, 1, size);
    out.room(1);
    out.bytes[out.length++] = history[start];
    return false;
  }
  const compressed = block.nSeq > 0 ? compressBlock(block, scratch) : size + 1;
  if (compressed >= size) {
    out.blockHeader(last, 0, size);
    out.put(history, start, end);
    return false;
  }
  out.blockHeader(last, 2, compressed);
  out.put(scratch, 0, compressed);
  return true;
}

/** Writes a block's literals and sequences sections into `buf`; returns their size. */
function compressBlock(block: Block, buf: Uint8Array): number {
  const { litLen, matchLen, offBase, nSeq, lits, nLits } = block;
  let pos = 0;
  // Literals section: raw.
  if (nLits < 32) {
    buf[pos++] = nLits << 3;
  } else if (nLits < 4096) {
    buf[pos++] = (1 << 2) | ((nLits & 0xf) << 4);
    buf[pos++] = nLits >>> 4;
  } else {
    buf[pos++] = (3 << 2) | ((nLits & 0xf) << 4);
    buf[pos++] = (nLits >>> 4) & 0xff;
    buf[pos++] = nLits >>> 12;
  }
  buf.set(lits.subarray(0, nLits), pos);
  pos += nLits;
  // Sequences section header: count, then all three tables predefined.
  if (nSeq < 128) {
    buf[pos++] = nSeq;
  } else if (nSeq < 0x7f00) {
    buf[pos++] = (nSeq >>> 8) + 128;
    buf[pos++] = nSeq & 0xff;
  } else {
    buf[pos++] = 255;
    buf[pos++] = (nSeq - 0x7f00) & 0xff;
    buf[pos++] = (nSeq - 0x7f00) >>> 8;
  }
  buf[pos++] = 0;
  // The bit stream, last sequence first (the reader goes backwards).
  const bits = new BitWriter(buf, pos);
  const llCode = (n: number) => LL_CODE[litLen[n]];
  const mlCode = (n: number) => ML_CODE[matchLen[n]];
  const ofCode = (n: number) => 31 - Math.clz32(offBase[n]);
  const extras = (n: number) => {
    const ll = llCode(n), ml = mlCode(n), of = ofCode(n);
    bits.add(litLen[n] - LL_BASE[ll], LL_BITS[ll]);
    bits.add(matchLen[n] - ML_BASE[ml], ML_BITS[ml]);
    bits.addLong(offBase[n] - 2 ** of, of);
  };
  let last = nSeq - 1;
  let llState = LL_FSE.init(llCode(last)), mlState = ML_FSE.init(mlCode(last)), ofState = OF_FSE.init(ofCode(last));
  extras(last);
  const encode = (table: FseEncoder, state: number, symbol: number): number => {
    const nbBitsOut = (state + table.deltaNbBits[symbol]) >> 16;
    bits.add(state, nbBitsOut);
    return table.stateTable[(state >> nbBitsOut) + table.deltaFindState[symbol]];
  };
  for (let n = nSeq - 2; n >= 0; n--) {
    ofState = encode(OF_FSE, ofState, ofCode(n));
    mlState = encode(ML_FSE, mlState, mlCode(n));
    llState = encode(LL_FSE, llState, llCode(n));
    extras(n);
    last = n;
  }
  bits.add(mlState, ML_FSE.log);
  bits.add(ofState, OF_FSE.log);
  bits.add(llState, LL_FSE.log);
  return bits.close();
}
