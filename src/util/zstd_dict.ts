/**
 * A streaming decoder for one zstd frame made against a raw-content dictionary
 * (dictionary ID 0: the "prefix" kind that `zstd --patch-from=OLD` writes), for
 * tar-diff version 2's ZstdDict op.
 *
 * Why our own decoder: Deno's node:zlib zstd takes no dictionary, and the npm
 * WebAssembly builds of libzstd either have no streaming decompression, no
 * dictionary or prefix API, or a fixed 16 MiB heap. This one follows RFC 8878
 * and is written for bounded memory on hostile input:
 *
 * - The dictionary is the caller's buffer, read in place, never copied.
 * - History is one buffer of the frame's window (or of the frame content size
 *   when that is smaller), used as a ring that wraps at block boundaries, so
 *   memory is dictionary + window + one block + the output buffer, whatever the
 *   decompressed size or compression ratio.
 * - Output comes out as the consumer pulls, in views of one reusable buffer.
 * - The frame header is checked before anything is allocated: a window over
 *   512 MiB (window log over 29), a dictionary over 512 MiB, or a frame naming
 *   a dictionary ID other than 0 is refused. Truncation, corruption and a
 *   content checksum mismatch (the usual sign of the wrong dictionary) fail with
 *   a FormatError saying where.
 *
 * @module
 */
import { FormatError, LimitError } from "../errors.ts";
import { Xxh64 } from "./xxh64.ts";
import {
  backwardStart,
  bitsAt,
  FseTable,
  HuffmanTable,
  PAD,
  readDistribution,
  ZstdCorruption,
} from "./zstd_entropy.ts";

/** Largest window log (and so window, 512 MiB) a frame may ask for. */
export const MAX_WINDOW_LOG = 29;
/** Largest dictionary accepted: 512 MiB. */
export const MAX_DICTIONARY_SIZE: number = 512 * 1024 * 1024;

const MAX_WINDOW = 2 ** MAX_WINDOW_LOG;
const FRAME_MAGIC = 0xfd2fb528;
const SKIPPABLE_MASK = 0xfffffff0;
const SKIPPABLE_MAGIC = 0x184d2a50;
/** Largest block content, compressed or not (RFC 8878 3.1.1.2.4). */
const MAX_BLOCK = 128 << 10;

// What the literal length, match length and offset codes stand for (RFC 8878 3.1.1.3.2.1).
// deno-fmt-ignore
const LL_BASE = [
  0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
  16, 18, 20, 22, 24, 28, 32, 40, 48, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536,
];
// deno-fmt-ignore
const LL_BITS = [
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
  1, 1, 1, 1, 2, 2, 3, 3, 4, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
];
// deno-fmt-ignore
const ML_BASE = [
  3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34,
  35, 37, 39, 41, 43, 47, 51, 59, 67, 83, 99, 131, 259, 515, 1027, 2051, 4099, 8195, 16387, 32771, 65539,
];
// deno-fmt-ignore
const ML_BITS = [
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
  1, 1, 1, 1, 2, 2, 3, 3, 4, 4, 5, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
];
const OF_BITS = Array.from({ length: 32 }, (_, code) => code);
const OF_BASE = OF_BITS.map((code) => 2 ** code);
const LL_MAX = 35, ML_MAX = 52, OF_MAX = 31;
const LL_LOG = 9, ML_LOG = 9, OF_LOG = 8;

/** A predefined sequence-code table (RFC 8878 3.1.1.3.2.2), built once and never changed. */
function predefined(dist: number[], log: number, base: number[], bits: number[]): FseTable {
  return new FseTable(log).build(Int16Array.from(dist), dist.length, log).withValues(base, bits);
}
// deno-fmt-ignore
const LL_DEFAULT = predefined([
  4, 3, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 2, 3, 2, 1, 1, 1, 1, 1, -1, -1, -1, -1,
], 6, LL_BASE, LL_BITS);
// deno-fmt-ignore
const ML_DEFAULT = predefined([
  1, 4, 3, 2, 2, 2, 2, 2, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
  1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, -1, -1, -1, -1, -1, -1, -1,
], 6, ML_BASE, ML_BITS);
// deno-fmt-ignore
const OF_DEFAULT = predefined([
  1, 1, 1, 1, 1, 1, 2, 2, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, -1, -1, -1, -1, -1,
], 5, OF_BASE, OF_BITS);

/** Options of {@link ZstdDictDecoder}. */
export interface ZstdDictDecoderOptions {
  /** Size of the output buffer each piece is a view of (default 256 KiB). */
  outSize?: number;
  /**
   * Accept bytes after the end of the frame, only counting them in
   * {@link ZstdDictDecoder.trailingBytes} (default: refuse them with a FormatError).
   */
  allowTrailing?: boolean;
}

const enum Step {
  Magic,
  Header,
  BlockHeader,
  BlockBody,
  Checksum,
  Done,
}

const EMPTY = new Uint8Array(0);
const MiB = 1024 * 1024;

function mib(n: number): string {
  return `${+(n / MiB).toFixed(1)} MiB`;
}

/**
 * A pull-style decoder of one zstd frame against a raw-content dictionary:
 * `push` a compressed chunk, then `pull` decompressed pieces until it returns
 * null; `finish` at the end of input. Each piece is a view of the decoder's one
 * output buffer, valid until the next `pull`. The interface is that of
 * `ZstdDecoder` in `zstd.ts`, which decodes dictionary-less streams.
 */
export class ZstdDictDecoder {
  #dict: Uint8Array;
  #out: Uint8Array;
  #allowTrailing: boolean;
  #closed = false;
  #error: unknown;

  // Input: the chunk being consumed, and the bytes of the part being collected.
  #in: Uint8Array = EMPTY;
  #inOff = 0;
  #consumed = 0;
  #trailing = 0;
  #step = Step.Magic;
  #head = new Uint8Array(16);
  /** The current block's bytes, at offset PAD, with PAD spare bytes on both sides. */
  #block: Uint8Array = new Uint8Array(PAD + MAX_BLOCK + PAD);
  #have = 0;
  #want = 5;

  // Frame parameters.
  #descriptor = 0;
  #window = 0;
  /** Frame content size, or -1 when the header does not say. */
  #contentSize = -1;
  #hasChecksum = false;
  #blockMax = 0;
  #lastBlock = false;
  #blockType = 0;
  #blockSize = 0;
  /** Frame offset of the current block's header, for messages. */
  #blockAt = 0;

  // History: a ring of the window's size that wraps at block boundaries.
  #ring: Uint8Array = EMPTY;
  #canWrap = false;
  #wrapped = false;
  /** Where the ring's previous lap ended (after a wrap). */
  #oldEnd = 0;
  #op = 0;
  /** Bytes of the frame decoded before the current block. */
  #total = 0;
  #pendStart = 0;
  #pendEnd = 0;
  #hash: Xxh64 | null = new Xxh64();

  // Entropy state carried from block to block.
  #huffman = new HuffmanTable();
  #hasHuffman = false;
  #lits = new Uint8Array(MAX_BLOCK + PAD);
  #norm = new Int16Array(64);
  #llOwn = new FseTable(LL_LOG);
  #ofOwn = new FseTable(OF_LOG);
  #mlOwn = new FseTable(ML_LOG);
  #ll: FseTable | null = null;
  #of: FseTable | null = null;
  #ml: FseTable | null = null;
  #rep1 = 1;
  #rep2 = 4;
  #rep3 = 8;

  /**
   * @param dictionary the raw-content dictionary (the whole source file); read in
   *   place, so it must not change while the decoder is in use
   */
  constructor(dictionary: Uint8Array, options: ZstdDictDecoderOptions = {}) {
    if (dictionary.length > MAX_DICTIONARY_SIZE) {
      throw new FormatError(
        `zstd dictionary of ${dictionary.length} bytes is over the ${mib(MAX_DICTIONARY_SIZE)} limit`,
      );
    }
    this.#dict = dictionary;
    this.#out = new Uint8Array(options.outSize ?? 256 << 10);
    this.#allowTrailing = options.allowTrailing ?? false;
  }

  /** Compressed bytes of the frame consumed so far (trailing bytes not included). */
  get consumed(): number {
    return this.#consumed;
  }

  /** Whether the frame's end (its last block and checksum) has been read. */
  get done(): boolean {
    return this.#step === Step.Done;
  }

  /** Bytes pushed after the end of the frame (only with `allowTrailing`). */
  get trailingBytes(): number {
    return this.#trailing;
  }

  /** Gives the decoder the next compressed chunk. Call only after `pull` returned null. */
  push(chunk: Uint8Array): void {
    this.#usable();
    if (this.#inOff < this.#in.length || this.#pendStart < this.#pendEnd) {
      throw new Error("ZstdDictDecoder.push before the previous chunk was drained");
    }
    this.#in = chunk;
    this.#inOff = 0;
  }

  /** The next decompressed piece, or null when the decoder needs more input. */
  pull(): Uint8Array | null {
    this.#usable();
    try {
      const out = this.#out;
      let n = 0;
      for (;;) {
        if (this.#pendStart < this.#pendEnd) {
          const k = Math.min(this.#pendEnd - this.#pendStart, out.length - n);
          out.set(this.#ring.subarray(this.#pendStart, this.#pendStart + k), n);
          n += k;
          this.#pendStart += k;
          if (n === out.length) break;
        } else if (!this.#advance()) {
          break;
        }
      }
      return n > 0 ? out.subarray(0, n) : null;
    } catch (e) {
      this.#error = e;
      this.close();
      throw e;
    }
  }

  /**
   * Declares the end of input: throws a FormatError when the frame is not
   * complete. Returns the number of bytes after the frame (see `allowTrailing`).
   * Releases the decoder.
   */
  finish(): number {
    this.#usable();
    if (this.#pendStart < this.#pendEnd || this.#inOff < this.#in.length) {
      throw new Error("ZstdDictDecoder.finish before the output was drained");
    }
    const step = this.#step;
    this.close();
    if (step !== Step.Done) {
      const where = ["frame header", "frame header", "block header", "block", "checksum"][step];
      if (this.#consumed === 0) throw new FormatError("zstd frame is empty");
      throw new FormatError(`zstd frame is truncated: it ends after ${this.#consumed} bytes, inside a ${where}`);
    }
    return this.#trailing;
  }

  /** Releases the decoder's buffers and its hash's WebAssembly memory (idempotent). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#ring = EMPTY;
    this.#block = EMPTY;
    this.#lits = EMPTY;
    this.#in = EMPTY;
    this.#hash = null; // its WebAssembly instance and memory go with it
    this.#pendStart = this.#pendEnd = 0;
  }

  #usable(): void {
    if (this.#error !== undefined) throw this.#error;
    if (this.#closed) throw new Error("ZstdDictDecoder used after close");
  }

  /** Consumes input until a block has been decoded (true) or the input is used up (false). */
  #advance(): boolean {
    const input = this.#in;
    while (this.#inOff < input.length) {
      if (this.#step === Step.Done) {
        const rest = input.length - this.#inOff;
        this.#inOff = input.length;
        if (!this.#allowTrailing) {
          throw new FormatError(`${rest} unexpected bytes after the end of the zstd frame (at byte ${this.#consumed})`);
        }
        this.#trailing += rest;
        return false;
      }
      const n = Math.min(this.#want - this.#have, input.length - this.#inOff);
      const part = input.subarray(this.#inOff, this.#inOff + n);
      if (this.#step === Step.BlockBody) this.#block.set(part, PAD + this.#have);
      else this.#head.set(part, this.#have);
      this.#have += n;
      this.#inOff += n;
      this.#consumed += n;
      if (this.#have === this.#want && this.#complete()) return true;
    }
    return false;
  }

  /** Expects `want` bytes for the next part. */
  #expect(step: Step, want: number): void {
    this.#step = step;
    this.#want = want;
    this.#have = 0;
  }

  /** Handles a complete part; true when it produced output. */
  #complete(): boolean {
    const h = this.#head;
    switch (this.#step) {
      case Step.Magic: {
        const magic = (h[0] | (h[1] << 8) | (h[2] << 16) | (h[3] << 24)) >>> 0;
        if (magic !== FRAME_MAGIC) {
          throw new FormatError(
            ((magic & SKIPPABLE_MASK) >>> 0) === SKIPPABLE_MAGIC
              ? "a skippable zstd frame where a zstd frame with content was expected"
              : "not a zstd frame (bad magic number)",
          );
        }
        const d = (this.#descriptor = h[4]);
        if (d & 0x08) throw new FormatError("corrupt zstd frame header (reserved bit set)");
        const single = (d >> 5) & 1;
        const fcsBytes = d >> 6 === 0 ? single : [0, 2, 4, 8][d >> 6];
        this.#expect(Step.Header, (single ? 0 : 1) + [0, 1, 2, 4][d & 3] + fcsBytes);
        return false;
      }
      case Step.Header:
        this.#frameHeader(this.#descriptor);
        this.#expect(Step.BlockHeader, 3);
        return false;
      case Step.BlockHeader:
        return this.#blockHeader();
      case Step.BlockBody:
        return this.#blockDone();
      case Step.Checksum: {
        const stored = (h[0] | (h[1] << 8) | (h[2] << 16) | (h[3] << 24)) >>> 0;
        const actual = this.#hash!.low32();
        if (stored !== actual) {
          throw new FormatError(
            `zstd frame checksum mismatch (stored ${hex(stored)}, content hashes to ${hex(actual)}): ` +
              "the data is corrupt or was made against another dictionary",
          );
        }
        this.#expect(Step.Done, 0);
        return false;
      }
    }
    return false;
  }

  /** Reads the frame header's fields after the descriptor, checks the limits, allocates the window. */
  #frameHeader(descriptor: number): void {
    const h = this.#head;
    let pos = 0;
    const single = (descriptor >> 5) & 1;
    this.#hasChecksum = ((descriptor >> 2) & 1) === 1;
    let window = 0;
    if (!single) {
      const exponent = h[pos] >> 3, mantissa = h[pos] & 7;
      pos++;
      const log = 10 + exponent;
      window = 2 ** log + (2 ** log / 8) * mantissa;
      if (window > MAX_WINDOW) {
        throw new FormatError(
          `zstd frame needs a window of ${mib(window)} (window log ${log}), over the ` +
            `${mib(MAX_WINDOW)} (window log ${MAX_WINDOW_LOG}) limit`,
        );
      }
    }
    const didBytes = [0, 1, 2, 4][descriptor & 3];
    let dictId = 0;
    for (let i = didBytes - 1; i >= 0; i--) dictId = dictId * 256 + h[pos + i];
    pos += didBytes;
    if (dictId !== 0) {
      throw new FormatError(
        `zstd frame names dictionary ID ${dictId}; only raw-content dictionaries (ID 0) are supported`,
      );
    }
    const fcsBytes = descriptor >> 6 === 0 ? single : [0, 2, 4, 8][descriptor >> 6];
    if (fcsBytes > 0) {
      let fcs = 0;
      for (let i = fcsBytes - 1; i >= 0; i--) fcs = fcs * 256 + h[pos + i];
      this.#contentSize = fcsBytes === 2 ? fcs + 256 : fcs;
    }
    if (single) {
      window = this.#contentSize;
      if (window > MAX_WINDOW) {
        throw new FormatError(
          `zstd frame is a single segment of ${mib(window)}, over the ${mib(MAX_WINDOW)} ` +
            `(window log ${MAX_WINDOW_LOG}) limit`,
        );
      }
    }
    this.#window = window;
    this.#blockMax = Math.min(window, MAX_BLOCK);
    // The whole content when it fits the window; else the window plus one block, wrapping.
    const fits = this.#contentSize >= 0 && this.#contentSize <= window;
    this.#canWrap = !fits;
    const size = fits ? this.#contentSize : window + this.#blockMax;
    try {
      this.#ring = new Uint8Array(size);
    } catch (e) {
      throw new LimitError(`cannot allocate the ${mib(size)} window this zstd frame needs`, { cause: e });
    }
  }

  /** Reads a block header; an empty raw or RLE block is done at once. Returns whether output was produced. */
  #blockHeader(): boolean {
    const h = this.#head;
    const v = h[0] | (h[1] << 8) | (h[2] << 16);
    this.#blockAt = this.#consumed - 3;
    this.#lastBlock = (v & 1) === 1;
    this.#blockType = (v >> 1) & 3;
    this.#blockSize = v >>> 3;
    const where = `block at byte ${this.#blockAt}`;
    switch (this.#blockType) {
      case 3:
        throw new FormatError(`corrupt zstd frame: reserved block type (${where})`);
      case 2:
        if (this.#blockSize > MAX_BLOCK || this.#blockSize === 0) {
          throw new FormatError(`corrupt zstd frame: compressed block of ${this.#blockSize} bytes (${where})`);
        }
        break;
      default:
        if (this.#blockSize > this.#blockMax) {
          throw new FormatError(
            `corrupt zstd frame: block of ${this.#blockSize} bytes, over the frame's ${this.#blockMax} (${where})`,
          );
        }
    }
    this.#expect(Step.BlockBody, this.#blockType === 1 ? 1 : this.#blockSize);
    return this.#want === 0 ? this.#blockDone() : false;
  }

  /** Decodes the collected block into the ring; true when it produced output. */
  #blockDone(): boolean {
    // Wrap the ring before a block that might not fit before its end.
    if (this.#canWrap && this.#op + this.#blockMax > this.#ring.length) {
      this.#oldEnd = this.#op;
      this.#op = 0;
      this.#wrapped = true;
    }
    const start = this.#op;
    const room = this.#contentSize >= 0 ? this.#contentSize - this.#total : Infinity;
    const limit = Math.min(start + this.#blockMax, this.#ring.length, start + room);
    try {
      const ring = this.#ring;
      const size = this.#blockSize;
      if (this.#blockType !== 2 && start + size > limit) {
        throw new ZstdCorruption("the frame holds more than its content size");
      }
      if (this.#blockType === 0) ring.set(this.#block.subarray(PAD, PAD + size), start);
      else if (this.#blockType === 1) ring.fill(this.#block[PAD], start, start + size);
      else this.#compressed(PAD, PAD + size, limit);
      if (this.#blockType !== 2) this.#op = start + size;
    } catch (e) {
      if (!(e instanceof ZstdCorruption)) throw e;
      throw new FormatError(`corrupt zstd frame: ${e.message} (block at byte ${this.#blockAt})`);
    }
    const end = this.#op;
    if (this.#hasChecksum) this.#hash!.update(this.#ring, start, end);
    this.#total += end - start;
    this.#pendStart = start;
    this.#pendEnd = end;
    if (this.#lastBlock) {
      if (this.#contentSize >= 0 && this.#total !== this.#contentSize) {
        throw new FormatError(
          `corrupt zstd frame: it decodes to ${this.#total} bytes, but its header says ${this.#contentSize}`,
        );
      }
      this.#expect(this.#hasChecksum ? Step.Checksum : Step.Done, 4);
    } else {
      this.#expect(Step.BlockHeader, 3);
    }
    return end > start;
  }

  /** Decodes the compressed block `block[start, end)` into the ring, writing no further than `limit`. */
  #compressed(start: number, end: number, limit: number): void {
    const b = this.#block;
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
      this.#huffmanLiterals(pos, litEnd, litSize, streams);
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
    pos = this.#table(0, modes >> 6, pos, end);
    pos = this.#table(1, (modes >> 4) & 3, pos, end);
    pos = this.#table(2, (modes >> 2) & 3, pos, end);
    this.#sequences(pos, end, nbSeq, litSrc, litPos, litEnd, limit);
  }

  /** Decodes 1 or 4 Huffman streams at `block[pos, end)` into `litSize` literals. */
  #huffmanLiterals(pos: number, end: number, litSize: number, streams: number): void {
    const b = this.#block, huffman = this.#huffman, lits = this.#lits;
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

  /** Sets up the table of one sequence code kind (0 literal lengths, 1 offsets, 2 match lengths). */
  #table(kind: number, mode: number, pos: number, end: number): number {
    const own = kind === 0 ? this.#llOwn : kind === 1 ? this.#ofOwn : this.#mlOwn;
    const max = kind === 0 ? LL_MAX : kind === 1 ? OF_MAX : ML_MAX;
    const base = kind === 0 ? LL_BASE : kind === 1 ? OF_BASE : ML_BASE;
    const bits = kind === 0 ? LL_BITS : kind === 1 ? OF_BITS : ML_BITS;
    let table: FseTable;
    switch (mode) {
      case 0:
        table = kind === 0 ? LL_DEFAULT : kind === 1 ? OF_DEFAULT : ML_DEFAULT;
        break;
      case 1: {
        if (pos >= end) throw new ZstdCorruption("RLE sequence code runs past the block");
        const symbol = this.#block[pos++];
        if (symbol > max) throw new ZstdCorruption(`sequence code ${symbol} is out of range`);
        table = own.rle(symbol).withValues(base, bits);
        break;
      }
      case 2: {
        const log = kind === 1 ? OF_LOG : kind === 0 ? LL_LOG : ML_LOG;
        const [accuracyLog, symbols, next] = readDistribution(this.#block, pos, end, max, log, this.#norm);
        if (next > end) throw new ZstdCorruption("FSE table description runs past the block");
        table = own.build(this.#norm, symbols, accuracyLog).withValues(base, bits);
        pos = next;
        break;
      }
      default: {
        const previous = kind === 0 ? this.#ll : kind === 1 ? this.#of : this.#ml;
        if (previous === null) throw new ZstdCorruption("repeat mode without a previous sequence table");
        table = previous;
      }
    }
    if (kind === 0) this.#ll = table;
    else if (kind === 1) this.#of = table;
    else this.#ml = table;
    return pos;
  }

  /**
   * Decodes `nbSeq` sequences from the bit stream `block[start, end)` and
   * executes them: literals from `lits[litPos, litEnd)`, matches from the
   * history (the ring, the ring's previous lap, or the dictionary).
   */
  #sequences(
    start: number,
    end: number,
    nbSeq: number,
    lits: Uint8Array,
    litPos: number,
    litEnd: number,
    limit: number,
  ): void {
    const b = this.#block, ring = this.#ring, window = this.#window;
    const ll = this.#ll!, of = this.#of!, ml = this.#ml!;
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

function hex(n: number): string {
  return n.toString(16).padStart(8, "0");
}
