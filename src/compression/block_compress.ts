/**
 * Compressing one stream on several threads: the input is cut into fixed-size
 * blocks that are compressed independently (in workers) and written back in
 * order.
 *
 * - gzip: one gzip member whose deflate stream is cut at byte-aligned sync
 *   points; each block is primed with the 32 KiB before it (the technique of
 *   pigz), so the result is an ordinary single-member gzip file, within a
 *   fraction of a percent of serial gzip's size.
 * - zstd: one zstd frame per block (concatenated frames are a valid zstd
 *   stream that every decoder reads as one).
 *
 * The output depends only on the input, the format, the level and the block
 * size, never on how many threads ran, so exports are reproducible.
 *
 * @module
 */
import zlib from "node:zlib";
import type { Compression } from "./stages.ts";
import type { TaskKind } from "../util/worker_pool.ts";

/** Uncompressed bytes per gzip block. */
export const GZIP_BLOCK = 1 << 20;
/** Uncompressed bytes per zstd frame (larger: frames share no history). */
export const ZSTD_BLOCK = 4 << 20;
/** The deflate window: how much of the previous block primes the next. */
const DICTIONARY = 32 * 1024;

/** Default levels: gzip's and zstd's own defaults. */
export const DEFAULT_COMPRESSION_LEVEL: Record<"gzip" | "zstd", number> = { gzip: 6, zstd: 3 };

/** One block to compress; plain data so it can cross a Worker boundary. */
export interface BlockJob {
  format: "gzip" | "zstd";
  level: number;
  /** The uncompressed block (its buffer is transferred to the worker). */
  data: Uint8Array;
  /** gzip: the (up to) 32 KiB that precede the block in the stream. */
  dictionary?: Uint8Array;
  /** The final block of the stream. */
  last: boolean;
}

/** The "compress" task kind: one block, its buffer transferred to the worker. */
export const compressTaskKind: TaskKind<{ job: BlockJob }, Uint8Array> = {
  run: ({ job }) => Promise.resolve(compressBlock(job)),
  transfer: ({ job }) => [job.data.buffer as ArrayBuffer],
};

/** Compresses one block (synchronously: this is what a worker spends its time on). */
export function compressBlock(job: BlockJob): Uint8Array {
  if (job.format === "gzip") {
    const out = zlib.deflateRawSync(job.data, {
      level: job.level,
      ...(job.dictionary ? { dictionary: job.dictionary } : {}),
      finishFlush: job.last ? zlib.constants.Z_FINISH : zlib.constants.Z_SYNC_FLUSH,
    });
    return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
  }
  const out = zlib.zstdCompressSync(job.data, {
    params: { [zlib.constants.ZSTD_c_compressionLevel]: job.level },
  });
  return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
}

/** How {@link compressInBlocks} runs. */
export interface BlockCompressOptions {
  format: "gzip" | "zstd";
  /** Compression level; default {@link DEFAULT_COMPRESSION_LEVEL}. */
  level?: number;
  /** Most blocks compressing or waiting to be written at once (bounds memory). */
  inFlight: number;
  /** Compresses a block somewhere (a worker pool, or inline). */
  run(job: BlockJob): Promise<Uint8Array>;
}

/** The fixed 10-byte gzip header: deflate, no name, no mtime, OS unknown. */
function gzipHeader(level: number): Uint8Array {
  const xfl = level >= 9 ? 2 : level <= 1 ? 4 : 0;
  return new Uint8Array([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, xfl, 0xff]);
}

function gzipTrailer(crc: number, size: number): Uint8Array {
  const out = new Uint8Array(8);
  const view = new DataView(out.buffer);
  view.setUint32(0, crc >>> 0, true);
  view.setUint32(4, size % 0x1_0000_0000, true);
  return out;
}

/**
 * Compresses `input` to `format` in blocks run through `options.run`, yielding
 * the compressed stream in order. Memory stays within `inFlight` blocks.
 */
export async function* compressInBlocks(
  input: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  options: BlockCompressOptions,
): AsyncGenerator<Uint8Array> {
  const { format } = options;
  const level = options.level ?? DEFAULT_COMPRESSION_LEVEL[format];
  const blockSize = format === "gzip" ? GZIP_BLOCK : ZSTD_BLOCK;
  const inFlight = Math.max(1, options.inFlight);
  const queue: Promise<Uint8Array>[] = [];
  let tail: Uint8Array | undefined;
  let dispatched = 0;
  const dispatch = (data: Uint8Array, last: boolean) => {
    const job: BlockJob = { format, level, data, last };
    if (format === "gzip") {
      if (tail) job.dictionary = tail;
      tail = data.slice(Math.max(0, data.length - DICTIONARY));
    }
    const p = options.run(job);
    p.catch(() => {}); // awaited in order below; never an unhandled rejection meanwhile
    queue.push(p);
    dispatched++;
  };

  let crc = 0;
  let total = 0;
  if (format === "gzip") yield gzipHeader(level);
  let block = new Uint8Array(blockSize);
  let fill = 0;
  for await (const chunk of input) {
    if (format === "gzip") crc = zlib.crc32(chunk, crc);
    total += chunk.length;
    let off = 0;
    while (off < chunk.length) {
      const n = Math.min(blockSize - fill, chunk.length - off);
      block.set(chunk.subarray(off, off + n), fill);
      fill += n;
      off += n;
      if (fill === blockSize) {
        dispatch(block, false);
        block = new Uint8Array(blockSize);
        fill = 0;
        while (queue.length >= inFlight) yield await queue.shift()!;
      }
    }
  }
  // gzip always ends with a final deflate block; zstd needs a frame only for leftovers (or empty input).
  if (format === "gzip" || fill > 0 || dispatched === 0) dispatch(block.subarray(0, fill), true);
  while (queue.length > 0) yield await queue.shift()!;
  if (format === "gzip") yield gzipTrailer(crc, total);
}

/** True when `c` is compressed in blocks (not "none"). */
export function isBlockFormat(c: Compression): c is "gzip" | "zstd" {
  return c === "gzip" || c === "zstd";
}
