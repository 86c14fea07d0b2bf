/**
 * zstd compression through node:zlib's native handle, driven synchronously as
 * the decoder drives its own (`decoder.ts`): one compression context reused for
 * many frames. `zlib.zstdCompressSync` makes a new context per call, which
 * costs ~50 µs for a frame of a hundred bytes (measured; ~18 µs reused): too
 * much for zstd:chunked, which writes a frame per file.
 *
 * A frame is always compressed in one call with room for its whole output, so
 * libzstd takes the same path (content size known, one pass) every time, and
 * the bytes depend only on the input and the level.
 *
 * @module
 */
import zlib from "node:zlib";
import type { NativeZstd } from "./decoder.ts";

/** libzstd's `ZSTD_compressBound`: the most a frame of `n` bytes can take. */
export function compressBound(n: number): number {
  return n + (n >>> 8) + (n < 128 << 10 ? ((128 << 10) - n) >>> 11 : 0) + 64;
}

const EMPTY = new Uint8Array(0);

/** A reusable zstd compressor at one level. */
export class ZstdEncoder {
  #native: NativeZstd;
  #out = new Uint8Array(64 << 10);
  #closed = false;
  #error: string | undefined;

  constructor(readonly level: number) {
    const stream = zlib.createZstdCompress({
      params: { [zlib.constants.ZSTD_c_compressionLevel]: level },
    }) as unknown as NativeZstd;
    if (typeof stream._handle?.writeSync !== "function" || !(stream._writeState instanceof Uint32Array)) {
      throw new Error("this Deno's node:zlib has no zstd handle that deltaship can drive");
    }
    this.#native = stream;
    stream._handle.onerror = (message: string) => {
      this.#error = message;
    };
  }

  /** `data` as one complete zstd frame: a view of the encoder's buffer, valid until its next call. */
  frame(data: Uint8Array): Uint8Array {
    const bound = compressBound(data.length);
    if (this.#out.length < bound) this.#out = new Uint8Array(bound);
    const n = this.#drive(zlib.constants.ZSTD_e_end, data, this.#out);
    if (n < 0) throw new Error("zstd frame did not fit its compress bound");
    return this.#out.subarray(0, n);
  }

  /**
   * Adds `data` to a frame that stays open across calls (streaming), and
   * appends what is compressed so far to `sink`; `end` closes the frame.
   */
  write(data: Uint8Array, sink: (piece: Uint8Array) => void): void {
    this.#stream(zlib.constants.ZSTD_e_continue, data, sink);
  }

  /** Closes the streaming frame, appending its last bytes to `sink`. */
  end(sink: (piece: Uint8Array) => void): void {
    this.#stream(zlib.constants.ZSTD_e_end, EMPTY, sink);
  }

  /** Releases the native context (idempotent). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#native._handle.close();
    } catch { /* already closed */ }
  }

  #stream(flush: number, data: Uint8Array, sink: (piece: Uint8Array) => void): void {
    let inOff = 0;
    let inLen = data.length;
    for (;;) {
      const out = this.#out;
      this.#call(flush, data, inOff, inLen, out);
      const [availOut, availIn] = this.#native._writeState;
      inOff += inLen - availIn;
      inLen = availIn;
      if (availOut < out.length) sink(out.slice(0, out.length - availOut));
      if (availOut > 0 && inLen === 0) return; // all input taken, and nothing more to flush
    }
  }

  /** One call over all of `data` into `out`: bytes written, or -1 when `out` filled up. */
  #drive(flush: number, data: Uint8Array, out: Uint8Array): number {
    this.#call(flush, data, 0, data.length, out);
    const [availOut, availIn] = this.#native._writeState;
    return availOut === 0 || availIn !== 0 ? -1 : out.length - availOut;
  }

  #call(flush: number, data: Uint8Array, inOff: number, inLen: number, out: Uint8Array): void {
    if (this.#closed) throw new Error("ZstdEncoder used after close");
    this.#native._handle.writeSync(flush, data, inOff, inLen, out, 0, out.length);
    if (this.#error !== undefined) throw new Error(`zstd compression failed: ${this.#error}`);
  }
}
