/**
 * Gathered source reads: the small Copy and AddData reads of one output batch
 * of the tar-diff interpreter, recorded as they come and then served per
 * source file with one positional read per run of nearby bytes.
 *
 * A tar-diff of a binary between distant releases is a million tiny AddData
 * ops (9 to 70 bytes) whose positions jump across the whole old file (the
 * biome layer of the far corpus: median distance from one read to the next
 * 11 MB, over an 84 MB file). No window or cache smaller than the file serves
 * that order; sorted, the reads of a few megabytes of output cover the file
 * densely, so one sweep of large reads serves them all.
 *
 * Reads are bucketed by (file, {@link CHUNK}-sized block of the file) as they
 * are recorded (a counting sort, no comparison sort of the records); a dense
 * bucket is one read of its span, a sparse one (few reads far apart) is sorted
 * and read in runs whose gaps are at most {@link GAP}.
 *
 * Given an arena (add_kernel.ts), the records and the run buffer live there,
 * records may be written by scan_kernel.ts's `scan` (and taken in by
 * {@link ReadBatch.adopt}), and each run is served by its `serve` (when the
 * output batch lies in the same arena); otherwise by a JavaScript loop.
 *
 * @module
 */
import type { ByteArena } from "./add_kernel.ts";
import { addBytes, copyInto, viewOf } from "./byte_runs.ts";

/** What a batch needs of a source file (apply.ts's SourceFile is one). */
export interface BatchFile {
  readonly size: number;
  /** Fills `into[offset .. offset + length)` with the file's bytes from `position`. */
  read(position: number, into: Uint8Array, offset: number, length: number): void;
  close(): void;
}

/** Reads of this many bytes or more are not gathered: one call each is cheap enough. */
export const SMALL_READ = 64 << 10;
/** Bucket granularity: the block of a file a bucket covers (its span is at most this plus one small read). */
export const CHUNK = 1 << 20;
/** Largest gap between two reads of a run in a sparse bucket. */
export const GAP = 32 << 10;
/** The largest run a flush reads: a bucket's block plus one small read. */
export const RUN_BUFFER = CHUNK + SMALL_READ;
/**
 * Records an arena holds (a batch with more is served early, by a flush before
 * the next record): 2^18, 24 bytes each, touched only as used. 2^17 served
 * the far corpus's denser batches early: 245 more read calls (strace) and 243
 * MB more copied from the page cache per pull.
 */
export const ARENA_RECORDS = 1 << 18;
/** Bytes of the records' region in an arena (8-byte aligned). */
export const RECORDS_SIZE = ARENA_RECORDS * 24;

/** Where an arena holds the batch's run buffer and records. */
export interface BatchArena {
  arena: ByteArena;
  /** The run buffer ({@link RUN_BUFFER} bytes, followed by the arena's padding). */
  bufAt: number;
  /** The records ({@link RECORDS_SIZE} bytes; a multiple of 8). */
  recordsAt: number;
}

/** Growable typed arrays, reused from one batch to the next. */
function grow<T extends Float64Array | Int32Array | Uint8Array>(a: T, need: number): T {
  if (a.length >= need) return a;
  const b = new (a.constructor as new (n: number) => T)(Math.max(need, a.length * 2));
  b.set(a);
  return b;
}

/**
 * The small reads of one output batch. {@link record} notes a read (a copy into
 * the output, or an add onto bytes already there); {@link flush} performs them
 * all. Files given to {@link retire} are closed once no recorded read needs them.
 */
export class ReadBatch {
  /** Files with reads in this batch; a file's slot is its index here. */
  #files: BatchFile[] = [];
  /** Bucket of each CHUNK of each slot's file (-1: none yet), indexed by slot. */
  #bucketOf: Int32Array[] = [];
  #retired: BatchFile[] = [];

  // Records: file position, output offset, length * 2 + add (1) or copy (0), bucket.
  #pos = new Float64Array(1024);
  #out = new Int32Array(1024);
  #len = new Int32Array(1024);
  #bucket = new Int32Array(1024);
  #order = new Int32Array(1024);
  #count = 0;
  /** Records the arrays may hold: fixed in an arena, else they grow. */
  #cap = Infinity;

  // Buckets: slot, lowest position, highest end, records, start in #order.
  #bSlot = new Int32Array(64);
  #bMin = new Float64Array(64);
  #bEnd = new Float64Array(64);
  #bCount = new Int32Array(64);
  #bStart = new Int32Array(64);
  #buckets = 0;
  #buf = new Uint8Array(0);

  /** Positional reads made by flushes so far (the source's read calls). */
  reads = 0;
  /** Bytes those reads took from the source. */
  bytesRead = 0;
  #arena: ByteArena | undefined;
  /** Byte offsets in the arena: positions, output offsets, lengths, order. */
  #at = { pos: 0, out: 0, len: 0, order: 0 };

  /** `arena`, when given, holds the run buffer and the records. */
  constructor(arena?: BatchArena) {
    if (arena) {
      const a = (this.#arena = arena.arena);
      this.#buf = a.bytes.subarray(arena.bufAt, arena.bufAt + RUN_BUFFER);
      const n = ARENA_RECORDS;
      const pos = arena.recordsAt;
      if (pos % 8 !== 0) throw new RangeError("the records must be 8-byte aligned");
      this.#at = { pos, out: pos + 8 * n, len: pos + 12 * n, order: pos + 16 * n };
      this.#pos = a.f64.subarray(pos >> 3, (pos >> 3) + n);
      this.#out = a.i32.subarray(this.#at.out >> 2, (this.#at.out >> 2) + n);
      this.#len = a.i32.subarray(this.#at.len >> 2, (this.#at.len >> 2) + n);
      this.#order = a.i32.subarray(this.#at.order >> 2, (this.#at.order >> 2) + n);
      this.#bucket = a.i32.subarray((pos + 20 * n) >> 2, ((pos + 20 * n) >> 2) + n);
      this.#cap = n;
    }
  }

  /** Records room is left for before a flush is due (Infinity without an arena). */
  get room(): number {
    return this.#cap - this.#count;
  }

  /** Byte offsets of the records in the arena, for scan_kernel.ts's `scan`: positions, output offsets, lengths. */
  get recordsAt(): { pos: number; out: number; len: number } {
    return this.#at;
  }

  /** Reads recorded and not yet performed. */
  get size(): number {
    return this.#count;
  }

  /**
   * Records a read of `length` (< {@link SMALL_READ}) bytes of `file` at
   * `position` into `out[offset ..]`: copied when `add` is false, added
   * bytewise onto what the output holds there when true. There must be
   * {@link room}.
   */
  record(file: BatchFile, position: number, offset: number, length: number, add: boolean): void {
    const i = this.#count;
    if (i >= this.#pos.length) {
      if (i >= this.#cap) throw new RangeError("read batch: no room for another record (flush first)");
      const n = i + 1;
      this.#pos = grow(this.#pos, n);
      this.#out = grow(this.#out, n);
      this.#len = grow(this.#len, n);
      this.#bucket = grow(this.#bucket, n);
    }
    this.#pos[i] = position;
    this.#out[i] = offset;
    this.#len[i] = length * 2 + (add ? 1 : 0);
    this.#place(this.#slot(file), i);
    this.#count = i + 1;
  }

  /**
   * Takes in the records that `scan` wrote after the last one this batch
   * holds, up to `count` (all of `file`).
   */
  adopt(file: BatchFile, count: number): void {
    if (count > this.#cap) throw new RangeError("read batch: more records than room");
    const slot = this.#slot(file);
    for (let i = this.#count; i < count; i++) this.#place(slot, i);
    this.#count = count;
  }

  /** The slot of `file`, given one if it has none. */
  #slot(file: BatchFile): number {
    let slot = this.#files.length - 1;
    if (slot < 0 || this.#files[slot] !== file) {
      slot = this.#files.indexOf(file);
      if (slot < 0) {
        slot = this.#files.length;
        this.#files.push(file);
        this.#bucketOf.push(new Int32Array(Math.floor(file.size / CHUNK) + 1).fill(-1));
      }
    }
    return slot;
  }

  /** Puts record `i` (of the file in `slot`) in its bucket. */
  #place(slot: number, i: number): void {
    const position = this.#pos[i];
    const end = position + (this.#len[i] >>> 1);
    const chunk = Math.floor(position / CHUNK);
    const table = this.#bucketOf[slot];
    let b = table[chunk];
    if (b < 0) {
      b = table[chunk] = this.#buckets++;
      if (b >= this.#bSlot.length) {
        const n = b + 1;
        this.#bSlot = grow(this.#bSlot, n);
        this.#bMin = grow(this.#bMin, n);
        this.#bEnd = grow(this.#bEnd, n);
        this.#bCount = grow(this.#bCount, n);
        this.#bStart = grow(this.#bStart, n);
      }
      this.#bSlot[b] = slot;
      this.#bMin[b] = position;
      this.#bEnd[b] = end;
      this.#bCount[b] = 0;
    } else {
      if (position < this.#bMin[b]) this.#bMin[b] = position;
      if (end > this.#bEnd[b]) this.#bEnd[b] = end;
    }
    this.#bCount[b]++;
    this.#bucket[i] = b;
  }

  /** Closes `file` now, or after the flush that serves its recorded reads. */
  retire(file: BatchFile): void {
    if (this.#files.includes(file)) this.#retired.push(file);
    else file.close();
  }

  /** Performs every recorded read into `out`, and closes the files retired meanwhile. */
  flush(out: Uint8Array): void {
    try {
      if (this.#count > 0) this.#serve(out);
    } finally {
      this.#count = 0;
      this.#buckets = 0;
      this.#files.length = 0;
      this.#bucketOf.length = 0;
      const retired = this.#retired;
      this.#retired = [];
      for (const f of retired) f.close();
    }
  }

  /** Closes every file still held (after a failure, or at the end) and frees the batch's buffers. */
  close(): void {
    this.#count = 0;
    this.flush(new Uint8Array(0));
    if (this.#arena || this.#pos.buffer.detached) return; // the arena's, or closed before
    for (const a of [this.#pos, this.#out, this.#len, this.#bucket, this.#order, this.#buf]) a.buffer.transfer(0);
  }

  #serve(out: Uint8Array): void {
    const count = this.#count;
    const buckets = this.#buckets;
    // Counting sort of the records by bucket.
    const start = this.#bStart;
    let at = 0;
    for (let b = 0; b < buckets; b++) {
      start[b] = at;
      at += this.#bCount[b];
    }
    const order = (this.#order = grow(this.#order, count)); // the arena's is never outgrown (count <= its room)
    const fill = this.#bCount; // reused as the fill cursor; rebuilt below
    for (let b = 0; b < buckets; b++) fill[b] = start[b];
    const bucket = this.#bucket;
    for (let i = 0; i < count; i++) order[fill[bucket[i]]++] = i;
    for (let b = 0; b < buckets; b++) {
      const from = start[b];
      const to = fill[b];
      const file = this.#files[this.#bSlot[b]];
      const span = this.#bEnd[b] - this.#bMin[b];
      if (to - from === 1) {
        this.#single(file, order, from, out);
      } else if (span <= (to - from) * GAP) {
        this.#run(file, this.#bMin[b], span, order, from, to, out);
      } else {
        this.#sparse(file, order, from, to, out);
      }
    }
  }

  /** One record alone: a copy goes straight into the output. */
  #single(file: BatchFile, order: Int32Array, at: number, out: Uint8Array): void {
    const i = order[at];
    const len = this.#len[i];
    if ((len & 1) === 0) {
      this.reads++;
      this.bytesRead += len >>> 1;
      file.read(this.#pos[i], out, this.#out[i], len >>> 1);
      return;
    }
    this.#run(file, this.#pos[i], len >>> 1, order, at, at + 1, out);
  }

  /** A sparse bucket: its records sorted by position, read in runs with gaps of at most GAP. */
  #sparse(file: BatchFile, order: Int32Array, from: number, to: number, out: Uint8Array): void {
    const pos = this.#pos;
    const len = this.#len;
    const sorted = order.subarray(from, to).sort((a, b) => pos[a] - pos[b]);
    let i = 0;
    while (i < sorted.length) {
      const first = pos[sorted[i]];
      let end = first + (len[sorted[i]] >>> 1);
      let j = i + 1;
      while (j < sorted.length && pos[sorted[j]] <= end + GAP) {
        end = Math.max(end, pos[sorted[j]] + (len[sorted[j]] >>> 1));
        j++;
      }
      this.#run(file, first, end - first, order, from + i, from + j, out);
      i = j;
    }
  }

  /**
   * Reads `span` bytes of `file` from `first` in one call and serves the records
   * `order[from .. to)` from them.
   */
  #run(file: BatchFile, first: number, span: number, order: Int32Array, from: number, to: number, out: Uint8Array) {
    if (this.#buf.length < span) this.#buf = new Uint8Array(Math.max(span, RUN_BUFFER)); // never, by the bucketing
    const buf = this.#buf;
    this.reads++;
    this.bytesRead += span;
    file.read(first, buf, 0, span);
    const arena = this.#arena;
    if (arena && buf.buffer === arena.bytes.buffer && out.buffer === arena.bytes.buffer) {
      const at = this.#at;
      arena.serve(from, to, first, out.byteOffset, buf.byteOffset, at.order, at.pos, at.out, at.len);
      return;
    }
    serve(out, viewOf(out), buf, viewOf(buf), first, order, from, to, this.#pos, this.#out, this.#len);
  }
}

/**
 * Copies (or adds) each record `order[from .. to)` from `buf`, which holds the
 * file from position `first`, into `out`. A plain function over typed arrays
 * and small integers, so that V8 keeps it monomorphic: this loop touches every
 * gathered byte.
 */
function serve(
  out: Uint8Array,
  outView: DataView,
  buf: Uint8Array,
  bufView: DataView,
  first: number,
  order: Int32Array,
  from: number,
  to: number,
  pos: Float64Array,
  off: Int32Array,
  len: Int32Array,
): void {
  for (let k = from; k < to; k++) {
    const i = order[k];
    const s = (pos[i] - first) | 0;
    const o = off[i];
    const n = len[i] >>> 1;
    if ((len[i] & 1) === 1) addBytes(out, outView, o, buf, bufView, s, n);
    else copyInto(out, o, buf, s, n);
  }
}
