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
 * This module is the frame layer (frame header, block headers, checksum, the
 * push/pull state machine); blocks are decoded by `block.ts`, with the
 * code tables of `tables.ts` and the entropy decoders of `entropy.ts`.
 *
 * @module
 */
import { FormatError, LimitError } from "../../errors.ts";
import { Xxh64 } from "./xxh64.ts";
import { BlockDecoder, MAX_BLOCK } from "./block.ts";
import { PAD, ZstdCorruption } from "./entropy.ts";

/** Largest window log (and so window, 512 MiB) a frame may ask for. */
export const MAX_WINDOW_LOG = 29;
/** Largest dictionary accepted: 512 MiB. */
export const MAX_DICTIONARY_SIZE: number = 512 * 1024 * 1024;

const MAX_WINDOW = 2 ** MAX_WINDOW_LOG;
const FRAME_MAGIC = 0xfd2fb528;
const SKIPPABLE_MASK = 0xfffffff0;
const SKIPPABLE_MAGIC = 0x184d2a50;
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

  // History: a ring of the window's size that wraps at block boundaries, decoded into by #blocks.
  #ring: Uint8Array = EMPTY;
  #canWrap = false;
  #blocks: BlockDecoder | null = null;
  /** Bytes of the frame decoded before the current block. */
  #total = 0;
  #pendStart = 0;
  #pendEnd = 0;
  #hash: Xxh64 | null = new Xxh64();

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
    this.#blocks = null; // the literals buffer and entropy tables go with it
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
    this.#blocks = new BlockDecoder(this.#dict, this.#ring, window, this.#blockMax);
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
    const blocks = this.#blocks!;
    // Wrap the ring before a block that might not fit before its end.
    if (this.#canWrap && blocks.op + this.#blockMax > this.#ring.length) blocks.wrap();
    const start = blocks.op;
    const room = this.#contentSize >= 0 ? this.#contentSize - this.#total : Infinity;
    const limit = Math.min(start + this.#blockMax, this.#ring.length, start + room);
    try {
      const size = this.#blockSize;
      if (this.#blockType !== 2 && start + size > limit) {
        throw new ZstdCorruption("the frame holds more than its content size");
      }
      if (this.#blockType === 0) blocks.raw(this.#block, PAD, size);
      else if (this.#blockType === 1) blocks.rle(this.#block[PAD], size);
      else blocks.compressed(this.#block, PAD, PAD + size, limit);
    } catch (e) {
      if (!(e instanceof ZstdCorruption)) throw e;
      throw new FormatError(`corrupt zstd frame: ${e.message} (block at byte ${this.#blockAt})`);
    }
    const end = blocks.op;
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
}

function hex(n: number): string {
  return n.toString(16).padStart(8, "0");
}
