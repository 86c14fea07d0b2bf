/**
 * Content-defined chunking of one file's bytes, as containers/storage's
 * zstd:chunked compressor cuts them (`pkg/chunked/compressor/compressor.go`
 * and `rollsum.go`): a run of at least 1024 zero bytes is a chunk of its own
 * (a hole); elsewhere a chunk ends after any byte where the low 16 bits of
 * bup's rolling checksum over the last 64 bytes are all ones (about every 64
 * KiB). The rolling sum runs on across chunk ends; a hole rolls it back to its
 * starting state (its window all zeros).
 *
 * One difference: a data chunk also ends when it reaches `maxChunk` bytes.
 * containers/storage has no such cap, so content whose checksum never hits
 * (long periodic runs) would make one frame of any size; the cap keeps every
 * frame small enough to compress in a worker in one go. On other data the cut
 * points are the same (a 4 MiB chunk without a hit has a probability of e^-64).
 *
 * @module
 */

const WINDOW = 64;
const CHAR_OFFSET = 31;
/** The rolling sums with an all-zero window: where every file (and every hole) starts. */
const S1_START = WINDOW * CHAR_OFFSET;
const S2_START = WINDOW * (WINDOW - 1) * CHAR_OFFSET;
/** A chunk ends where the checksum's low `ROLLSUM_BITS` bits are all set. */
const SPLIT_MASK = (1 << 16) - 1;
/** The longest data chunk deltaship's zstd:chunked writer cuts (its job size), and the content index with it. */
export const MAX_CHUNK = 2 << 20;
/** Zero bytes that make a hole. */
export const HOLE_THRESHOLD = 1024;

const ZEROS = new Uint8Array(HOLE_THRESHOLD);

/** Receives a file's chunks in order. */
export interface ChunkSink {
  /** Bytes of the current data chunk (a view: copy to keep). */
  bytes(data: Uint8Array): void;
  /** The current data chunk ends here (never called for an empty one). */
  endChunk(): void;
  /** A hole: `length` zero bytes, a chunk of their own. */
  zeros(length: number): void;
}

/** Cuts the content of one file after another into chunks, as it is pushed in pieces. */
export class ContentChunker {
  #window = new Uint8Array(WINDOW);
  #at = 0;
  #s1 = S1_START;
  #s2 = S2_START;
  /** Zero bytes seen but not yet given out: a hole or not, depending on what follows. */
  #zeros = 0;
  /** Bytes in the current data chunk. */
  #chunk = 0;

  constructor(readonly sink: ChunkSink, readonly maxChunk: number) {}

  /** Starts a new file. */
  begin(): void {
    this.#reset();
    this.#chunk = 0;
    this.#zeros = 0;
  }

  /** Feeds the next piece of the file's content. */
  push(data: Uint8Array): void {
    const n = data.length;
    let i = 0;
    if (this.#zeros > 0) {
      // A run of zeros from the pieces before: does it go on, and how far?
      while (i < n && data[i] === 0) i++;
      this.#zeros += i;
      if (i === n) return;
      this.#flushZeros();
    }
    this.#roll(data, i);
  }

  /** Ends the file: gives out what is pending and ends its last chunk. */
  end(): void {
    this.#flushZeros();
    if (this.#chunk > 0) this.#endChunk();
  }

  /** A run of zeros that has ended: a hole when long enough, else ordinary data. */
  #flushZeros(): void {
    const run = this.#zeros;
    if (run === 0) return;
    this.#zeros = 0;
    if (run >= HOLE_THRESHOLD) this.#hole(run);
    else this.#roll(ZEROS.subarray(0, run), 0, true);
  }

  #hole(length: number): void {
    if (this.#chunk > 0) this.#endChunk();
    this.sink.zeros(length);
    this.#reset(); // at least 64 zeros rolled: the window is all zeros again
  }

  /**
   * Rolls `data` from `start` to its end, giving the bytes out in spans as long
   * as the chunks allow: a span ends where a chunk is cut, before a hole, and
   * before a run of zeros that reaches the end (it may be a hole: that is
   * settled by the next piece). With `plain`, zeros are data like any byte.
   */
  #roll(data: Uint8Array, start: number, plain = false): void {
    const window = this.#window;
    const max = this.maxChunk;
    const n = data.length;
    let tail = n; // where the zeros that reach the end start
    if (!plain) { while (tail > start && data[tail - 1] === 0) tail--; }
    let at = this.#at;
    let s1 = this.#s1;
    let s2 = this.#s2;
    let chunk = this.#chunk;
    let from = start;
    let i = start;
    for (;;) {
      const [holeStart, holeEnd] = plain ? [tail, tail] : nextHole(data, i, tail);
      for (; i < holeStart; i++) {
        const ch = data[i];
        const drop = window[at];
        window[at] = ch;
        at = (at + 1) & (WINDOW - 1);
        s1 = (s1 + ch - drop) | 0;
        s2 = (s2 + s1 - WINDOW * (drop + CHAR_OFFSET)) | 0;
        chunk++;
        if ((s2 & SPLIT_MASK) === SPLIT_MASK || chunk === max) {
          this.sink.bytes(data.subarray(from, i + 1));
          from = i + 1;
          this.sink.endChunk();
          chunk = 0;
        }
      }
      if (holeStart === tail) break;
      if (holeStart > from) this.sink.bytes(data.subarray(from, holeStart));
      this.#save(at, s1, s2, chunk);
      this.#hole(holeEnd - holeStart);
      at = this.#at;
      s1 = this.#s1;
      s2 = this.#s2;
      chunk = this.#chunk;
      from = i = holeEnd;
    }
    if (tail > from) this.sink.bytes(data.subarray(from, tail));
    this.#save(at, s1, s2, chunk);
    this.#zeros = n - tail;
  }

  #save(at: number, s1: number, s2: number, chunk: number): void {
    this.#at = at;
    this.#s1 = s1;
    this.#s2 = s2;
    this.#chunk = chunk;
  }

  #endChunk(): void {
    this.sink.endChunk();
    this.#chunk = 0;
  }

  #reset(): void {
    this.#window.fill(0);
    this.#at = 0;
    this.#s1 = S1_START;
    this.#s2 = S2_START;
  }
}

/**
 * The next run of at least {@link HOLE_THRESHOLD} zeros in `data[from, end)`
 * (bounded by non-zero bytes or those ends), as [start, end), or [end, end).
 * Probes one byte in every threshold's length: a run that long must cover it.
 */
function nextHole(data: Uint8Array, from: number, end: number): [number, number] {
  let p = from + HOLE_THRESHOLD - 1;
  while (p < end) {
    if (data[p] !== 0) {
      p += HOLE_THRESHOLD;
      continue;
    }
    let s = p;
    while (s > from && data[s - 1] === 0) s--;
    let e = p + 1;
    while (e < end && data[e] === 0) e++;
    if (e - s >= HOLE_THRESHOLD) return [s, e];
    p = e + HOLE_THRESHOLD;
  }
  return [end, end];
}
