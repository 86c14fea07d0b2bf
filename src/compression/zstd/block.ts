/**
 * The block layer of the zstd dictionary decoder (RFC 8878 3.1.1.2 to
 * 3.1.1.4): a block's literals section (raw, RLE or Huffman-coded), its
 * sequences section (code tables, then the backward bit stream of sequences),
 * and the execution of those sequences over the frame's history: the ring the
 * frame decodes into, the ring's previous lap after it wrapped, and the
 * raw-content dictionary before the frame's first byte.
 *
 * The entropy state a block may reuse from the one before (the Huffman table,
 * the three sequence tables, the repeat offsets) lives here for the length of
 * one frame. Errors are {@link ZstdCorruption}s, which the frame layer
 * (`dict.ts`) turns into FormatErrors saying which block was at fault.
 *
 * @module
 */
import { backwardStart, bitsAt, HuffmanTable, PAD, ZstdCorruption } from "./entropy.ts";
import { SequenceTables } from "./tables.ts";

/** Largest block content, compressed or not (RFC 8878 3.1.1.2.4). */
export const MAX_BLOCK = 128 << 10;

/**
 * Decodes the blocks of one frame into its history, a ring the frame layer
 * allocates, wraps (at block boundaries, with `wrap`) and reads the
 * output from. Block bytes are read from a buffer with {@link PAD} spare bytes
 * on both sides.
 */
export class BlockDecoder {
  readonly #dict: Uint8Array;
  readonly #ring: Uint8Array;
  readonly #window: number;
  readonly #blockMax: number;
  #wrapped = false;
  /** Where the ring's previous lap ended (after a wrap). */
  #oldEnd = 0;
  #op = 0;

  // Entropy state carried from block to block.
  #huffman = new HuffmanTable();
  #hasHuffman = false;
  #lits = new Uint8Array(MAX_BLOCK + PAD);
  #tables = new SequenceTables();
  #rep1 = 1;
  #rep2 = 4;
  #rep3 = 8;

  /**
   * @param dictionary the raw-content dictionary: history before the frame's first byte
   * @param ring the history buffer the blocks are decoded into
   * @param window the frame's window size: how far back a match may reach
   * @param blockMax the largest block content the frame allows
   */
  constructor(dictionary: Uint8Array, ring: Uint8Array, window: number, blockMax: number) {
    this.#dict = dictionary;
    this.#ring = ring;
    this.#window = window;
    this.#blockMax = blockMax;
  }

  /** Position in the ring where the next block's content goes. */
  get op(): number {
    return this.#op;
  }

  /** Starts a new lap of the ring: the current one becomes the previous lap, still in the window. */
  wrap(): void {
    this.#oldEnd = this.#op;
    this.#op = 0;
    this.#wrapped = true;
  }

  /** Copies a raw block's `size` bytes at `block[from]` into the ring. */
  raw(block: Uint8Array, from: number, size: number): void {
    this.#ring.set(block.subarray(from, from + size), this.#op);
    this.#op += size;
  }

  /** Writes an RLE block: `size` times `byte`. */
  rle(byte: number, size: number): void {
    this.#ring.fill(byte, this.#op, this.#op + size);
    this.#op += size;
  }

  /** Decodes the compressed block `b[start, end)` into the ring, writing no further than `limit`. */
  compressed(b: Uint8Array, start: number, end: number, limit: number): void {
    let pos = start;
    // Literals section (RFC 8878 3.1.1.3.1).
    const b0 = b[pos];
    const type = b0 & 3, format = (b0 >> 2) & 3;
    let litSrc: Uint8Array, litPos: number, litSize: number;
    if (type < 2) {
      if ((format & 1) === 0) (litSize = b0 >> 3), (pos += 1);
      else if (format === 1) (litSize = (b0 >> 4) | (b[pos + 1] << 4)), (pos += 2);
      else (litSize = (b0 >> 4) | (b[pos + 1] << 4) | (b[pos + 2] << 12)), (pos += 3);
      if (litSize > this.#blockMax) throw new ZstdCorruption(`${litSize} literals in a block`);
      if (type === 0) {
        if (pos + litSize > end) throw new ZstdCorruption("raw literals run past the block");
        (litSrc = b), (litPos = pos);
        pos += litSize;
      } else {
        if (pos + 1 > end) throw new ZstdCorruption("RLE literals run past the block");
        (litSrc = this.#lits.fill(b[pos], 0, litSize)), (litPos = 0);
        pos += 1;
      }
    } else {
      let compSize: number, streams = 4;
      if (format < 2) {
        const v = b0 | (b[pos + 1] << 8) | (b[pos + 2] << 16);
        (litSize = (v >>> 4) & 0x3ff), (compSize = (v >>> 14) & 0x3ff), (pos += 3);
        if (format === 0) streams = 1;
      } else if (format === 2) {
        const v = (b0 | (b[pos + 1] << 8) | (b[pos + 2] << 16) | (b[pos + 3] << 24)) >>> 0;
        (litSize = (v >>> 4) & 0x3fff), (compSize = v >>> 18), (pos += 4);
      } else {
        litSize = (b0 >> 4) | (b[pos + 1] << 4) | ((b[pos + 2] & 0x3f) << 12);
        compSize = (b[pos + 2] >> 6) | (b[pos + 3] << 2) | (b[pos + 4] << 10);
        pos += 5;
      }
      if (litSize > this.#blockMax) throw new ZstdCorruption(`${litSize} literals in a block`);
      const litEnd = pos + compSize;
      if (litEnd > end) throw new ZstdCorruption("compressed literals run past the block");
      if (type === 2) {
        pos = this.#huffman.read(b, pos, litEnd);
        this.#hasHuffman = true;
      } else if (!this.#hasHuffman) {
        throw new ZstdCorruption("treeless literals without a previous Huffman table");
      }
      this.#huffmanLiterals(b, pos, litEnd, litSize, streams);
      (litSrc = this.#lits), (litPos = 0);
      pos = litEnd;
    }
    const litEnd = litPos + litSize;

    // Sequences section header (RFC 8878 3.1.1.3.2).
    if (pos >= end) throw new ZstdCorruption("sequences section is missing");
    let nbSeq = b[pos++];
    if (nbSeq === 255) (nbSeq = b[pos] + (b[pos + 1] << 8) + 0x7f00), (pos += 2);
    else if (nbSeq >= 128) (nbSeq = ((nbSeq - 128) << 8) + b[pos]), (pos += 1);
    if (pos > end) throw new ZstdCorruption("sequences section header runs past the block");
    if (nbSeq === 0) {
      if (pos !== end) throw new ZstdCorruption("bytes after an empty sequences section");
      if (this.#op + litSize > limit) throw new ZstdCorruption("block decodes to more than it may");
      this.#ring.set(litSrc.subarray(litPos, litEnd), this.#op);
      this.#op += litSize;
      return;
    }
    if (pos >= end) throw new ZstdCorruption("sequences section header runs past the block");
    const modes = b[pos++];
    if (modes & 3) throw new ZstdCorruption("reserved bits set in the sequence compression modes");
    const tables = this.#tables;
    pos = tables.select(0, modes >> 6, b, pos, end);
    pos = tables.select(1, (modes >> 4) & 3, b, pos, end);
    pos = tables.select(2, (modes >> 2) & 3, b, pos, end);
    this.#sequences(b, pos, end, nbSeq, litSrc, litPos, litEnd, limit);
  }

  /** Decodes 1 or 4 Huffman streams at `b[pos, end)` into `litSize` literals. */
  #huffmanLiterals(b: Uint8Array, pos: number, end: number, litSize: number, streams: number): void {
    const huffman = this.#huffman, lits = this.#lits;
    if (streams === 1) return huffman.decode(b, pos, end, lits, 0, litSize);
    if (pos + 6 > end) throw new ZstdCorruption("Huffman jump table runs past the literals");
    const s1 = b[pos] | (b[pos + 1] << 8), s2 = b[pos + 2] | (b[pos + 3] << 8), s3 = b[pos + 4] | (b[pos + 5] << 8);
    const p1 = pos + 6, p2 = p1 + s1, p3 = p2 + s2, p4 = p3 + s3;
    if (p4 >= end) throw new ZstdCorruption("Huffman streams run past the literals");
    const seg = (litSize + 3) >> 2;
    const last = litSize - 3 * seg;
    if (last < 0) throw new ZstdCorruption("too few literals for 4 Huffman streams");
    huffman.decode(b, p1, p2, lits, 0, seg);
    huffman.decode(b, p2, p3, lits, seg, seg);
    huffman.decode(b, p3, p4, lits, 2 * seg, seg);
    huffman.decode(b, p4, end, lits, 3 * seg, last);
  }

  /**
   * Decodes `nbSeq` sequences from the bit stream `b[start, end)` and
   * executes them: literals from `lits[litPos, litEnd)`, matches from the
   * history (the ring, the ring's previous lap, or the dictionary).
   */
  #sequences(
    b: Uint8Array,
    start: number,
    end: number,
    nbSeq: number,
    lits: Uint8Array,
    litPos: number,
    litEnd: number,
    limit: number,
  ): void {
    const ring = this.#ring, window = this.#window;
    const ll = this.#tables.ll!, of = this.#tables.of!, ml = this.#tables.ml!;
    const llSym = ll.valueBase, llExtra = ll.valueBits, llBits = ll.bits, llNext = ll.next;
    const ofSym = of.valueBase, ofExtra = of.valueBits, ofBits = of.bits, ofNext = of.next;
    const mlSym = ml.valueBase, mlExtra = ml.valueBits, mlBits = ml.bits, mlNext = ml.next;
    const floor = start * 8;
    let bit = backwardStart(b, start, end, "sequences");
    bit -= ll.accuracyLog;
    let llState = bitsAt(b, bit, ll.accuracyLog);
    bit -= of.accuracyLog;
    let ofState = bitsAt(b, bit, of.accuracyLog);
    bit -= ml.accuracyLog;
    let mlState = bitsAt(b, bit, ml.accuracyLog);
    if (bit < floor) throw new ZstdCorruption("sequences bit stream is too short");
    let rep1 = this.#rep1, rep2 = this.#rep2, rep3 = this.#rep3;
    let op = this.#op;
    for (let i = 0; i < nbSeq; i++) {
      // Offset, match length, literal length: values, in that order (RFC 8878 3.1.1.3.2.1).
      // Bit fields are read inline (as `bitsAt` does): this loop is the hot path.
      let n = ofExtra[ofState];
      let offsetValue = ofSym[ofState];
      if (n > 0) {
        bit -= n;
        let i = bit >> 3;
        const low = (b[i] | (b[i + 1] << 8) | (b[i + 2] << 16) | (b[i + 3] << 24)) >>> (bit & 7);
        if (n <= 24) {
          offsetValue += low & ((1 << n) - 1);
        } else {
          i = (bit + 24) >> 3;
          const high = ((b[i] | (b[i + 1] << 8) | (b[i + 2] << 16)) >>> ((bit + 24) & 7)) & ((1 << (n - 24)) - 1);
          offsetValue += (low & 0xffffff) + high * 0x1000000;
        }
      }
      n = mlExtra[mlState];
      let matchLength = mlSym[mlState];
      if (n > 0) {
        bit -= n;
        const i = bit >> 3;
        matchLength += ((b[i] | (b[i + 1] << 8) | (b[i + 2] << 16) | (b[i + 3] << 24)) >>> (bit & 7)) & ((1 << n) - 1);
      }
      n = llExtra[llState];
      let litLength = llSym[llState];
      if (n > 0) {
        bit -= n;
        const i = bit >> 3;
        litLength += ((b[i] | (b[i + 1] << 8) | (b[i + 2] << 16) | (b[i + 3] << 24)) >>> (bit & 7)) & ((1 << n) - 1);
      }

      let offset: number;
      if (offsetValue > 3) {
        offset = offsetValue - 3;
        rep3 = rep2;
        rep2 = rep1;
        rep1 = offset;
      } else {
        const repeat = litLength === 0 ? offsetValue : offsetValue - 1;
        if (repeat === 0) {
          offset = rep1;
        } else {
          offset = repeat === 1 ? rep2 : repeat === 2 ? rep3 : rep1 - 1;
          if (repeat !== 1) rep3 = rep2;
          rep2 = rep1;
          rep1 = offset;
        }
      }

      if (i + 1 < nbSeq) {
        // The literal length state is read first (highest bits), then match length, then
        // offset; one 32-bit load covers all three when they take at most 25 bits.
        const llN = llBits[llState], mlN = mlBits[mlState], ofN = ofBits[ofState];
        const total = llN + mlN + ofN;
        let v: number;
        if (total <= 25) {
          bit -= total;
          const at = bit >> 3;
          v = (b[at] | (b[at + 1] << 8) | (b[at + 2] << 16) | (b[at + 3] << 24)) >>> (bit & 7);
        } else {
          bit -= total;
          v = bitsAt(b, bit, ofN + mlN) + bitsAt(b, bit + ofN + mlN, llN) * (1 << (ofN + mlN));
        }
        const ofRead = v & ((1 << ofN) - 1);
        v >>>= ofN;
        const mlRead = v & ((1 << mlN) - 1);
        v >>>= mlN;
        llState = llNext[llState] + (v & ((1 << llN) - 1));
        mlState = mlNext[mlState] + mlRead;
        ofState = ofNext[ofState] + ofRead;
      }
      if (bit < floor) throw new ZstdCorruption("sequences bit stream is too short");

      // Execute: literals, then the match.
      if (op + litLength + matchLength > limit) throw new ZstdCorruption("block decodes to more than it may");
      if (litPos + litLength > litEnd) throw new ZstdCorruption("sequences use more literals than the block has");
      if (litLength < 32) {
        for (let k = 0; k < litLength; k++) ring[op + k] = lits[litPos + k];
      } else {
        ring.set(lits.subarray(litPos, litPos + litLength), op);
      }
      op += litLength;
      litPos += litLength;
      if (offset <= op && offset <= window && offset > 0) {
        op = copyBack(ring, op, offset, matchLength);
      } else {
        op = this.#copyFar(op, offset, matchLength);
      }
    }
    if (bit !== floor) throw new ZstdCorruption("sequences bit stream has bits left over");
    const rest = litEnd - litPos;
    if (op + rest > limit) throw new ZstdCorruption("block decodes to more than it may");
    ring.set(lits.subarray(litPos, litEnd), op);
    this.#op = op + rest;
    this.#rep1 = rep1;
    this.#rep2 = rep2;
    this.#rep3 = rep3;
  }

  /**
   * A match that starts before the ring's current lap: in the dictionary (while
   * the frame has decoded no more than its window) or in the ring's previous lap.
   */
  #copyFar(op: number, offset: number, length: number): number {
    if (offset === 0) throw new ZstdCorruption("match offset 0");
    if (offset <= op) throw new ZstdCorruption(`match offset ${offset} is beyond the ${this.#window}-byte window`);
    const back = offset - op;
    const ring = this.#ring;
    let src: Uint8Array, from: number;
    if (!this.#wrapped) {
      // op is the frame position here: the dictionary is history while it is within the window.
      if (op > this.#window) {
        throw new ZstdCorruption(`match offset ${offset} is beyond the ${this.#window}-byte window`);
      }
      if (back > this.#dict.length) {
        throw new ZstdCorruption(
          `match offset ${offset} reaches ${back} bytes before the frame, before the ` +
            `${this.#dict.length}-byte dictionary`,
        );
      }
      (src = this.#dict), (from = this.#dict.length - back);
    } else {
      if (offset > this.#window) {
        throw new ZstdCorruption(`match offset ${offset} is beyond the ${this.#window}-byte window`);
      }
      (src = ring), (from = this.#oldEnd - back);
    }
    const head = Math.min(back, length);
    if (head < 32) {
      for (let k = 0; k < head; k++) ring[op + k] = src[from + k];
    } else if (src === ring) {
      ring.copyWithin(op, from, from + head);
    } else {
      ring.set(src.subarray(from, from + head), op);
    }
    op += head;
    return head < length ? copyBack(ring, op, offset, length - head) : op;
  }
}

/** Copies `length` bytes from `offset` bytes back in `ring` to `op` (overlap repeats); returns the new end. */
function copyBack(ring: Uint8Array, op: number, offset: number, length: number): number {
  const src = op - offset;
  if (length < 32) {
    for (let k = 0; k < length; k++) ring[op + k] = ring[src + k];
    return op + length;
  }
  if (offset >= length) {
    ring.copyWithin(op, src, src + length);
    return op + length;
  }
  // Overlapping: the bytes repeat with period `offset`. Copy from `chunk` bytes back,
  // a whole number of periods that are all already written, doubling each time.
  const end = op + length;
  for (let chunk = offset; op < end; chunk *= 2) {
    const n = Math.min(chunk, end - op);
    ring.copyWithin(op, op - chunk, op - chunk + n);
    op += n;
  }
  return end;
}
