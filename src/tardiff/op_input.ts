/**
 * The input side of the tar-diff interpreter: the blob streams in, its magic is
 * checked (and tells the version), the zstd stream is decompressed as the
 * interpreter pulls, and op headers are read from the decompressed pieces, on a
 * fast path when a whole header lies in the current piece.
 *
 * @module
 */
import { TarDiffError } from "../errors.ts";
import { MAX_VARINT_BYTES } from "../util/varint.ts";
import { ZstdDecoder } from "../compression/zstd/decoder.ts";
import { TARDIFF_MAGIC } from "./format.ts";

/** Reads the decompressed op stream: the current piece of it, and the ops' headers. */
export class OpInput {
  /** The current decompressed piece (a view of the decoder's buffer). */
  buf: Uint8Array = new Uint8Array(0);
  /** Position in `buf`. */
  pos = 0;
  /** Offset of `buf[0]` in the decompressed stream. */
  base = 0;
  /** The header just read. */
  op = 0;
  size = 0;
  /** The format version the magic gave (1 or 2), once it has been read. */
  version = 0;
  #reader: ReadableStreamDefaultReader<Uint8Array>;
  #decoder: ZstdDecoder;
  #magic = 0;
  #done = false;
  readonly #freeChunks: boolean;
  /** The chunk the decoder is reading, freed once it is drained when the chunks are ours. */
  #chunk: Uint8Array | undefined;

  /**
   * `decode` is the size of the decompressed pieces, or the buffer that holds
   * them. With `freeChunks`, the stream's chunks are the interpreter's: each is
   * freed (its buffer detached) once decoded, where it is a whole buffer. A chunk
   * read while the ops run outlives a few young collections, and freed chunks
   * otherwise wait for a full collection: 12 MiB of them at the far corpus's
   * peak (docs/design.md).
   */
  constructor(stream: ReadableStream<Uint8Array>, decode: number | Uint8Array, freeChunks = false) {
    this.#freeChunks = freeChunks;
    this.#reader = stream.getReader();
    this.#decoder = new ZstdDecoder(decode);
  }

  /** Offset of the next unread byte in the decompressed stream. */
  get offset(): number {
    return this.base + this.pos;
  }

  /** Replaces `buf` (which must be used up) with the next piece; false at the end of the stream. */
  async more(): Promise<boolean> {
    this.base += this.buf.length;
    this.buf = this.buf.subarray(0, 0);
    this.pos = 0;
    for (;;) {
      const piece = this.#decode(() => this.#decoder.pull());
      if (piece !== null) {
        this.buf = piece;
        return true;
      }
      if (this.#done) return false;
      this.#freeChunk();
      const r = await this.#reader.read();
      if (this.#freeChunks) this.#chunk = r.value;
      if (r.done) {
        this.#done = true;
        if (this.#magic < TARDIFF_MAGIC.length) throw new TarDiffError("tar-diff is too short to hold its magic");
        this.#decode(() => this.#decoder.finish());
        return false;
      }
      let chunk = r.value;
      if (this.#magic < TARDIFF_MAGIC.length) chunk = this.#checkMagic(chunk);
      if (chunk.length > 0) this.#decode(() => this.#decoder.push(chunk));
    }
  }

  /** Runs a decoder step, naming zstd failures as tar-diff ones. */
  #decode<T>(step: () => T): T {
    try {
      return step();
    } catch (e) {
      const msg = e instanceof Error ? e.message : String(e);
      throw new TarDiffError(`tar-diff: ${msg} (compressed byte ${this.#magic + this.#decoder.consumed})`);
    }
  }

  /** Checks the magic, `tardf1\n\0` or `tardf2\n\0` (byte 5 is the version). */
  #checkMagic(chunk: Uint8Array): Uint8Array {
    const n = Math.min(TARDIFF_MAGIC.length - this.#magic, chunk.length);
    for (let i = 0; i < n; i++) {
      const at = this.#magic + i;
      const byte = chunk[i];
      if (at === 5 && (byte === 0x31 || byte === 0x32)) {
        this.version = byte - 0x30;
      } else if (byte !== TARDIFF_MAGIC[at]) {
        throw new TarDiffError('not a tar-diff: wrong magic (expected "tardf1\\n\\0" or "tardf2\\n\\0")');
      }
    }
    this.#magic += n;
    return chunk.subarray(n);
  }

  /** Reads an op header when the current piece surely holds it; false to take the slow path. */
  header(): boolean {
    const buf = this.buf;
    let p = this.pos;
    if (buf.length - p < 1 + MAX_VARINT_BYTES) return false;
    const at = this.base + p;
    this.op = buf[p++];
    let b = buf[p++];
    let size = b & 0x7f;
    if (b & 0x80) {
      let scale = 128;
      let i = 1;
      do {
        if (i++ === MAX_VARINT_BYTES) this.#overlong(at);
        b = buf[p++];
        size += (b & 0x7f) * scale;
        scale *= 128;
      } while (b & 0x80);
      if (!Number.isSafeInteger(size)) this.#tooLarge(size, at);
    }
    this.size = size;
    this.pos = p;
    return true;
  }

  /** Reads an op header byte by byte, across pieces. */
  async headerSlow(): Promise<void> {
    const at = this.offset;
    this.op = await this.#byte(at);
    let size = 0;
    let scale = 1;
    for (let i = 0;; i++) {
      if (i === MAX_VARINT_BYTES) this.#overlong(at);
      const b = await this.#byte(at);
      size += (b & 0x7f) * scale;
      scale *= 128;
      if ((b & 0x80) === 0) break;
    }
    if (!Number.isSafeInteger(size)) this.#tooLarge(size, at);
    this.size = size;
  }

  async #byte(at: number): Promise<number> {
    if (this.pos >= this.buf.length && !(await this.more())) {
      throw new TarDiffError(`tar-diff is truncated: the op at byte ${at} has an incomplete header`, at);
    }
    return this.buf[this.pos++];
  }

  #overlong(at: number): never {
    throw new TarDiffError(`tar-diff: overlong varint (over 10 bytes) in the op at byte ${at}`, at);
  }

  #tooLarge(size: number, at: number): never {
    throw new TarDiffError(`tar-diff: the op at byte ${at} has a size (${size}) past 2^53`, at);
  }

  /** Frees the chunk just drained, when it is ours and nothing else can see its buffer. */
  #freeChunk(): void {
    const chunk = this.#chunk;
    this.#chunk = undefined;
    const buffer = chunk?.buffer;
    if (!(buffer instanceof ArrayBuffer) || buffer.detached) return;
    if (chunk!.byteOffset !== 0 || chunk!.byteLength !== buffer.byteLength) return;
    try {
      buffer.transfer(0);
    } catch { /* not detachable (WebAssembly memory): left to the collector */ }
  }

  /** Releases the decoder and the input stream. */
  async close(): Promise<void> {
    this.#chunk = undefined; // a failure may leave it half read: it is left to the collector
    this.#decoder.close();
    if (!this.#done) await this.#reader.cancel().catch(() => {});
    this.#reader.releaseLock();
  }
}
