/**
 * Streaming zstd decompression that is safe on hostile input: a synchronous,
 * pull-style decoder over node:zlib's native zstd handle, writing into one
 * reusable output buffer, with a frame checker in front.
 *
 * Why not the `node:zlib` stream: in Deno 2.9 its zstd Transform accepts a
 * truncated stream as complete, and bytes after the last frame raise an uncaught
 * error that kills the process. Driving the handle directly, errors are thrown
 * synchronously where we can catch them, nothing is buffered beyond the output
 * buffer, and the frame checker (which walks frame and block headers, never
 * content) detects truncation and trailing garbage before the decoder sees them.
 *
 * @module
 */
import zlib from "node:zlib";
import { FormatError } from "../../errors.ts";
import { Yielder } from "../../util/yielder.ts";

const FRAME_MAGIC = 0xfd2fb528;
const SKIPPABLE_MASK = 0xfffffff0;
const SKIPPABLE_MAGIC = 0x184d2a50;
/** Largest block a zstd frame may hold (compressed or not). */
const MAX_BLOCK = 128 << 10;

const enum Step {
  Magic,
  SkippableSize,
  Descriptor,
  BlockHeader,
  Skip,
}

/**
 * Walks the structure of a zstd stream (frames, skippable frames, block headers,
 * checksums) without decoding it, to tell a complete stream from a truncated one
 * and to refuse bytes that are not zstd before a decoder meets them.
 */
export class ZstdFrameChecker {
  #step = Step.Magic;
  #head = new Uint8Array(4);
  #headLength = 0;
  #headWant = 4;
  #skip = 0;
  /** What follows the bytes being skipped: a block header, or the next frame. */
  #afterSkip = Step.Magic;
  #hasChecksum = false;
  #lastBlock = false;
  /** Bytes checked so far. */
  offset = 0;
  /** Complete frames seen (skippable ones included). */
  frames = 0;

  /** Checks the next chunk of the stream; throws a FormatError at the first byte that cannot be zstd. */
  check(chunk: Uint8Array): void {
    let pos = 0;
    while (pos < chunk.length) {
      if (this.#step === Step.Skip) {
        const n = Math.min(this.#skip, chunk.length - pos);
        this.#skip -= n;
        pos += n;
        if (this.#skip === 0) this.#afterSkipped();
        continue;
      }
      const n = Math.min(this.#headWant - this.#headLength, chunk.length - pos);
      this.#head.set(chunk.subarray(pos, pos + n), this.#headLength);
      this.#headLength += n;
      pos += n;
      if (this.#headLength === this.#headWant) this.#headDone(this.offset + pos - this.#headWant);
    }
    this.offset += chunk.length;
  }

  /** Checks that the stream ended after a complete frame. */
  finish(): void {
    if (this.#step === Step.Magic && this.#headLength === 0 && this.frames > 0) return;
    if (this.frames === 0 && this.offset === 0) throw new FormatError("zstd stream is empty");
    throw new FormatError(`zstd stream is truncated (it ends inside a frame, at byte ${this.offset})`);
  }

  #need(step: Step, bytes: number): void {
    this.#step = step;
    this.#headLength = 0;
    this.#headWant = bytes;
  }

  #skipThen(bytes: number, then: Step): void {
    this.#afterSkip = then;
    if (bytes === 0) return this.#afterSkipped();
    this.#step = Step.Skip;
    this.#skip = bytes;
  }

  #afterSkipped(): void {
    if (this.#afterSkip === Step.Magic) {
      this.frames++;
      this.#need(Step.Magic, 4);
    } else {
      this.#need(Step.BlockHeader, 3);
    }
  }

  #headDone(at: number): void {
    const h = this.#head;
    switch (this.#step) {
      case Step.Magic: {
        const magic = (h[0] | (h[1] << 8) | (h[2] << 16) | (h[3] << 24)) >>> 0;
        if (magic === FRAME_MAGIC) return this.#need(Step.Descriptor, 1);
        if (((magic & SKIPPABLE_MASK) >>> 0) === SKIPPABLE_MAGIC) return this.#need(Step.SkippableSize, 4);
        throw new FormatError(`not zstd data: bad frame magic at byte ${at}`);
      }
      case Step.SkippableSize:
        return this.#skipThen((h[0] | (h[1] << 8) | (h[2] << 16) | (h[3] << 24)) >>> 0, Step.Magic);
      case Step.Descriptor: {
        const d = h[0];
        if (d & 0x08) throw new FormatError(`corrupt zstd frame header at byte ${at} (reserved bit set)`);
        const fcsFlag = d >> 6;
        const singleSegment = (d >> 5) & 1;
        this.#hasChecksum = ((d >> 2) & 1) === 1;
        const dictBytes = [0, 1, 2, 4][d & 3];
        const fcsBytes = fcsFlag === 0 ? singleSegment : [0, 2, 4, 8][fcsFlag];
        this.#lastBlock = false;
        return this.#skipThen((singleSegment ? 0 : 1) + dictBytes + fcsBytes, Step.BlockHeader);
      }
      case Step.BlockHeader: {
        const v = h[0] | (h[1] << 8) | (h[2] << 16);
        const last = (v & 1) === 1;
        const type = (v >> 1) & 3;
        const size = v >>> 3;
        if (type === 3) throw new FormatError(`corrupt zstd block header at byte ${at} (reserved block type)`);
        if (size > MAX_BLOCK) throw new FormatError(`corrupt zstd block header at byte ${at} (block of ${size} bytes)`);
        this.#lastBlock = last;
        const body = type === 1 ? 1 : size; // RLE blocks carry one byte
        const then = last ? Step.Magic : Step.BlockHeader;
        return this.#skipThen(body + (last && this.#hasChecksum ? 4 : 0), then);
      }
    }
  }
}

/** The undocumented parts of a node:zlib zstd stream that deltaship drives (here and in `native_encoder.ts`). */
export interface NativeZstd {
  _handle: {
    writeSync(
      flush: number,
      input: Uint8Array,
      inOff: number,
      inLen: number,
      out: Uint8Array,
      outOff: number,
      outLen: number,
    ): void;
    close(): void;
    onerror: (message: string, errno: number) => void;
  };
  _writeState: Uint32Array;
}

const EMPTY = new Uint8Array(0);

/**
 * A pull-style zstd decoder: `push` a compressed chunk, then `pull` decompressed
 * pieces until it returns null; `finish` at the end of input. Each piece is a view
 * of the decoder's one output buffer, valid until the next `pull`.
 */
export class ZstdDecoder {
  #native: NativeZstd;
  #frames = new ZstdFrameChecker();
  #out: Uint8Array;
  #in: Uint8Array = EMPTY;
  #inOff = 0;
  #inLen = 0;
  /** The last pull filled the output buffer, so more output may be waiting. */
  #full = false;
  #error: string | undefined;
  #closed = false;

  /** `out` is the size of the output buffer, or the buffer itself (the decoder owns it until it is closed). */
  constructor(out: number | Uint8Array = 1 << 18) {
    const stream = zlib.createZstdDecompress() as unknown as NativeZstd;
    if (typeof stream._handle?.writeSync !== "function" || !(stream._writeState instanceof Uint32Array)) {
      throw new Error("this Deno's node:zlib has no zstd handle that deltaship can drive");
    }
    this.#native = stream;
    stream._handle.onerror = (message: string) => {
      this.#error = message;
    };
    this.#out = typeof out === "number" ? new Uint8Array(out) : out;
  }

  /** Compressed bytes pushed so far. */
  get consumed(): number {
    return this.#frames.offset;
  }

  /** Gives the decoder the next compressed chunk. Call only after `pull` returned null. */
  push(chunk: Uint8Array): void {
    if (this.#inLen > 0 || this.#full) throw new Error("ZstdDecoder.push before the previous chunk was drained");
    this.#frames.check(chunk);
    this.#in = chunk;
    this.#inOff = 0;
    this.#inLen = chunk.length;
  }

  /** The next decompressed piece, or null when the decoder needs more input. */
  pull(): Uint8Array | null {
    while (this.#inLen > 0 || this.#full) {
      const out = this.#out;
      try {
        this.#native._handle.writeSync(0, this.#in, this.#inOff, this.#inLen, out, 0, out.length);
      } catch (e) {
        this.#error ??= (e as Error).message;
      }
      if (this.#error !== undefined) {
        throw new FormatError(`corrupt zstd data (${this.#error.replace(/^Zstd decompress error: /, "")})`);
      }
      const [availOut, availIn] = this.#native._writeState;
      this.#inOff += this.#inLen - availIn;
      this.#inLen = availIn;
      this.#full = availOut === 0;
      const produced = out.length - availOut;
      if (produced > 0) return out.subarray(0, produced);
    }
    this.#in = EMPTY;
    return null;
  }

  /** Declares the end of input: throws when the stream was truncated. Releases the decoder. */
  finish(): void {
    this.close();
    this.#frames.finish();
  }

  /** Releases the native decoder (idempotent). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#native._handle.close();
    } catch { /* already closed */ }
  }
}

/**
 * A stream stage that decompresses zstd with {@link ZstdDecoder}, producing
 * output only as the reader pulls: each read decodes one piece, and a write is
 * accepted (its promise resolves) only once everything its chunk decodes to has
 * been read. Memory is one input chunk and one output piece, whatever the
 * compression ratio (a TransformStream would enqueue all a chunk decodes to at
 * once: gigabytes, for a bomb of zeros). Truncated input, trailing garbage and
 * corrupt data fail both sides with a FormatError.
 */
export function zstdDecompressStream(outSize = 1 << 18): TransformStream<Uint8Array, Uint8Array> {
  const decoder = new ZstdDecoder(outSize);
  const yielder = new Yielder();
  let output!: ReadableStreamDefaultController<Uint8Array>;
  /** The write whose chunk the decoder holds, settled once that chunk is drained. */
  let accepted: { resolve(): void; reject(e: unknown): void } | undefined;
  /** Wakes a read waiting for the next chunk (or the end). */
  let wake: (() => void) | undefined;
  let ended = false;
  let failure: { error: unknown } | undefined;

  const fail = (error: unknown) => {
    if (failure) return;
    failure = { error };
    decoder.close();
    accepted?.reject(error);
    accepted = undefined;
    try {
      output.error(error);
    } catch { /* already closed */ }
    wake?.();
  };
  const step = <T>(f: () => T): T => {
    try {
      return f();
    } catch (e) {
      fail(e);
      throw e;
    }
  };

  const readable = new ReadableStream<Uint8Array>({
    start(controller) {
      output = controller;
    },
    async pull(controller) {
      await yielder.yieldIfDue();
      for (;;) {
        if (failure) throw failure.error;
        const piece = step(() => decoder.pull());
        if (piece !== null) return controller.enqueue(piece.slice());
        // The chunk is drained: take the next one.
        accepted?.resolve();
        accepted = undefined;
        if (ended) {
          step(() => decoder.finish());
          return controller.close();
        }
        await new Promise<void>((resolve) => (wake = resolve));
        wake = undefined;
      }
    },
    cancel(reason) {
      fail(reason ?? new Error("zstd output cancelled"));
    },
  }, { highWaterMark: 0 });

  const writable = new WritableStream<Uint8Array>({
    write(chunk) {
      if (failure) throw failure.error;
      step(() => decoder.push(chunk));
      return new Promise<void>((resolve, reject) => {
        accepted = { resolve, reject };
        wake?.();
      });
    },
    close() {
      ended = true;
      wake?.();
    },
    abort(reason) {
      fail(reason);
    },
  });
  return { readable, writable } as TransformStream<Uint8Array, Uint8Array>;
}

/**
 * The pieces a whole zstd blob (frames and skippable frames) decompresses to,
 * each a view valid until the next is asked for; a FormatError naming `what`
 * when it is corrupt, truncated, or does not decompress to exactly `length`
 * bytes (it stops as soon as it goes past). For documents held compressed in
 * memory and read once.
 */
export function* zstdPieces(compressed: Uint8Array, length: number, what: string): Generator<Uint8Array> {
  const decoder = new ZstdDecoder(1 << 16);
  const step = <T>(f: () => T): T => {
    try {
      return f();
    } catch (e) {
      throw new FormatError(`${what}: ${(e as Error).message}`, { cause: e });
    }
  };
  try {
    let total = 0;
    step(() => decoder.push(compressed));
    for (let piece = step(() => decoder.pull()); piece !== null; piece = step(() => decoder.pull())) {
      total += piece.length;
      if (total > length) throw new FormatError(`${what}: decompresses to more than the ${length} bytes announced`);
      yield piece;
    }
    step(() => decoder.finish());
    if (total !== length) {
      throw new FormatError(`${what}: decompresses to ${total} bytes, not the ${length} announced`);
    }
  } finally {
    decoder.close();
  }
}
