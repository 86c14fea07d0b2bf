/**
 * Writing a tar-diff operation stream (the part inside the zstd stream): op
 * byte, minimal LEB128 size, payload. Keeps what readers need to see: Data runs
 * coalesced into bounded chunks, AddData split well below the 100 MiB reader
 * limit, Open names checked against the 4 KiB limit, and Seek/Open emitted only
 * when the source position actually has to change. Output goes to a sink in
 * chunks of about {@link CHUNK} bytes, so nothing grows with the layer.
 *
 * @module
 */
import { MAX_ADD_DATA, MAX_OPEN_NAME, Op } from "./format.ts";
import { MAX_VARINT_BYTES, writeVarint } from "../util/varint.ts";

/** Size of the chunks handed to the sink. */
export const CHUNK = 1 << 20;

/** Longest Data op written (consecutive Data is coalesced up to this). */
const MAX_DATA = 1 << 20;

/**
 * Exact runs in an approximate match at least this long become Copy ops.
 * Shorter runs stay inside AddData as zero bytes, which zstd compresses to
 * almost nothing; splitting them out puts unpredictable op lengths into the
 * stream instead. Measured on the benchmark corpus (zstd 9): 16 -> 5.75 MB,
 * 64 -> 5.85 MB, 512 -> 5.65 MB, never -> 5.66 MB; apply time the same.
 */
export const COPY_MIN = 512;

/** Receives finished chunks of the op stream; each chunk is handed over for good. */
export type OpSink = (chunk: Uint8Array) => Promise<void>;

const encoder = new TextEncoder();

/** Counts of what was written, for statistics and tests. */
export interface OpCounts {
  data: number;
  copy: number;
  addData: number;
  opens: number;
  seeks: number;
  /** ZstdDict ops (version 2). */
  zstdDict: number;
}

/** Builds an op stream into a sink. */
export class OpWriter {
  #sink: OpSink;
  #buf = new Uint8Array(CHUNK);
  #len = 0;
  /** Pending Data bytes, written as one op when something else comes. */
  #data = new Uint8Array(MAX_DATA);
  #dataLen = 0;
  #file: string | undefined;
  #pos = 0;
  /** Bytes of output (target) described so far. */
  outputSize = 0;
  /** Bytes the op stream is long so far. */
  written = 0;
  readonly counts: OpCounts = { data: 0, copy: 0, addData: 0, opens: 0, seeks: 0, zstdDict: 0 };

  constructor(sink: OpSink) {
    this.#sink = sink;
  }

  /** Emits literal bytes. */
  async data(bytes: Uint8Array): Promise<void> {
    let off = 0;
    while (off < bytes.length) {
      if (this.#dataLen === MAX_DATA) await this.#flushData();
      const n = Math.min(bytes.length - off, MAX_DATA - this.#dataLen);
      this.#data.set(bytes.subarray(off, off + n), this.#dataLen);
      this.#dataLen += n;
      off += n;
    }
    this.outputSize += bytes.length;
    this.counts.data += bytes.length;
  }

  /** Emits `n` zero bytes as literal data. */
  async zeros(n: number): Promise<void> {
    while (n > 0) {
      if (this.#dataLen === MAX_DATA) await this.#flushData();
      const k = Math.min(n, MAX_DATA - this.#dataLen);
      this.#data.fill(0, this.#dataLen, this.#dataLen + k);
      this.#dataLen += k;
      n -= k;
      this.outputSize += k;
      this.counts.data += k;
    }
  }

  /**
   * Makes `path` the current source file at position `pos`: Open when another
   * file is current, then Seek when the position differs.
   */
  async sourceAt(path: string, pos: number): Promise<void> {
    await this.#open(path);
    await this.seek(pos);
  }

  /** Opens `path` unless it is the current file (the position is then wherever it is). */
  async #open(path: string): Promise<void> {
    if (this.#file === path) return;
    const name = encoder.encode(path);
    if (name.length === 0 || name.length > MAX_OPEN_NAME) {
      throw new RangeError(`source path of ${name.length} bytes cannot be opened by tar-diff readers`);
    }
    await this.#flushData();
    await this.#op(Op.Open, name.length);
    await this.#raw(name);
    this.#file = path;
    this.#pos = 0;
    this.counts.opens++;
  }

  /**
   * Emits `targetSize` bytes as a ZstdDict op (version 2 only): `frame` is one
   * zstd frame made against the whole of source file `path` (`sourceSize`
   * bytes), which is opened if it is not current. The position is then the
   * file's end, as readers leave it.
   */
  async zstdDict(path: string, sourceSize: number, frame: Uint8Array, targetSize: number): Promise<void> {
    await this.#open(path);
    await this.#flushData();
    await this.#op(Op.ZstdDict, frame.length);
    await this.#raw(frame);
    this.#pos = sourceSize;
    this.outputSize += targetSize;
    this.counts.zstdDict++;
  }

  /** Moves the source position (no op when it is already there). */
  async seek(pos: number): Promise<void> {
    if (pos === this.#pos) return;
    await this.#flushData();
    await this.#op(Op.Seek, pos);
    this.#pos = pos;
    this.counts.seeks++;
  }

  /** Emits `n` bytes of the current source file from the current position. */
  async copy(n: number): Promise<void> {
    if (n === 0) return;
    this.#requireFile();
    await this.#flushData();
    await this.#op(Op.Copy, n);
    this.#pos += n;
    this.outputSize += n;
    this.counts.copy += n;
  }

  /**
   * Emits `target[t..t+n)` as the current source file's bytes from the current
   * position (`source[s..s+n)`, which the caller holds) plus their difference:
   * runs where both agree for at least {@link COPY_MIN} bytes become Copy, the
   * rest AddData.
   */
  async approximate(target: Uint8Array, t: number, source: Uint8Array, s: number, n: number): Promise<void> {
    this.#requireFile();
    let i = 0;
    let addStart = 0;
    while (i < n) {
      if (target[t + i] !== source[s + i]) {
        i++;
        continue;
      }
      let j = i + 1;
      while (j < n && target[t + j] === source[s + j]) j++;
      if (j - i >= COPY_MIN || (addStart === i && j === n)) {
        if (i > addStart) await this.#addData(target, t + addStart, source, s + addStart, i - addStart);
        await this.copy(j - i);
        addStart = j;
      }
      i = j;
    }
    if (addStart < n) await this.#addData(target, t + addStart, source, s + addStart, n - addStart);
  }

  /** Flushes everything to the sink. Call once at the end. */
  async end(): Promise<void> {
    await this.#flushData();
    if (this.#len > 0) {
      const chunk = this.#buf.subarray(0, this.#len);
      this.#buf = new Uint8Array(CHUNK);
      this.#len = 0;
      await this.#sink(chunk);
    }
  }

  #requireFile(): void {
    if (this.#file === undefined) throw new Error("tar-diff op needs an open source file");
  }

  async #addData(target: Uint8Array, t: number, source: Uint8Array, s: number, n: number): Promise<void> {
    await this.#flushData();
    while (n > 0) {
      // Room for a sizeable op in the current chunk, else start the next one.
      if (CHUNK - this.#len < Math.min(n, 1 << 16) + 1 + MAX_VARINT_BYTES) await this.#flush();
      const k = Math.min(n, CHUNK - this.#len - 1 - MAX_VARINT_BYTES, MAX_ADD_DATA);
      this.#buf[this.#len++] = Op.AddData;
      this.#len = writeVarint(this.#buf, this.#len, k);
      const buf = this.#buf;
      let o = this.#len;
      for (let i = 0; i < k; i++) buf[o++] = target[t + i] - source[s + i];
      this.#len = o;
      this.written += 1 + k;
      t += k;
      s += k;
      n -= k;
      this.#pos += k;
      this.outputSize += k;
      this.counts.addData += k;
    }
  }

  async #flushData(): Promise<void> {
    if (this.#dataLen === 0) return;
    const n = this.#dataLen;
    this.#dataLen = 0;
    await this.#op(Op.Data, n);
    await this.#raw(this.#data.subarray(0, n));
  }

  async #op(code: number, size: number): Promise<void> {
    if (CHUNK - this.#len < 1 + MAX_VARINT_BYTES) await this.#flush();
    const start = this.#len;
    this.#buf[this.#len++] = code;
    this.#len = writeVarint(this.#buf, this.#len, size);
    this.written += this.#len - start;
  }

  async #raw(bytes: Uint8Array): Promise<void> {
    let off = 0;
    while (off < bytes.length) {
      if (this.#len === CHUNK) await this.#flush();
      const n = Math.min(bytes.length - off, CHUNK - this.#len);
      this.#buf.set(bytes.subarray(off, off + n), this.#len);
      this.#len += n;
      off += n;
    }
    this.written += bytes.length;
  }

  async #flush(): Promise<void> {
    const chunk = this.#buf.subarray(0, this.#len);
    this.#buf = new Uint8Array(CHUNK);
    this.#len = 0;
    await this.#sink(chunk);
  }
}
