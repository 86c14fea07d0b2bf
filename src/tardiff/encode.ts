/**
 * The tar-diff encoder: turns a stored target layer into a `tardf1` delta against
 * a source filesystem (the old image's merged rootfs).
 *
 * The target layer comes in as {@link TargetPiece}s from an {@link EncoderInput}
 * (the repository's record of it, in deltaship), so tar headers, padding and the
 * trailer go out as Data exactly as stored, and each file's content object is
 * known before any byte of it is read:
 * - content the source has anywhere: Open + Copy, nothing read;
 * - a changed file with a source found by name ({@link SourceCatalog.byNameFor}),
 *   or else by content (a sketch of sampled rolling hashes, {@link SimilarFinder}):
 *   both files are read and diffed as {@link EncodeOptions.binaryDiff} says:
 *   bsdiff (the source suffix-sorted, the bsdiff-style matcher's plan out as
 *   Copy/AddData/Seek/Data), zstd (one ZstdDict frame against the whole source
 *   file, `compression/zstd/dict_encode.ts`: much faster, somewhat larger), or auto
 *   (both tried, the smaller once compressed kept), each within its size limits;
 * - anything else: Data, streamed from its object.
 *
 * zstd and auto write version 2 (`tardf2`), even when no ZstdDict op comes out,
 * as oci-delta does; bsdiff writes version 1.
 *
 * The op stream is zstd-compressed as it is produced. Memory is bounded by the
 * largest source/target pair (their bytes, 4 bytes per sorted source position,
 * the plan), reused from file to file; never by the layer. The encoder reads
 * nothing itself: contents come through the input's two reads.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import zlib from "node:zlib";
import { Duplex } from "node:stream";
import type { TarEntry } from "../tar/header.ts";
import { MAX_DICTIONARY_SIZE } from "../compression/zstd/dict.ts";
import { zstdPatchJoined } from "../compression/zstd/dict_encode.ts";
import { MatchIndex, type Plan, planDiff } from "./bsdiff.ts";
import { TARDIFF_MAGIC, TARDIFF_MAGIC_V2 } from "./format.ts";
import { type OpCounts, OpWriter } from "./op_writer.ts";
import {
  isDeltaCandidate,
  overlap,
  sketch,
  SKETCH_BYTES,
  type SourceCatalog,
  type SourceFile,
} from "./source_catalog.ts";
import { sparseSuffixArray } from "./suffix_array.ts";
import { PairBuffers } from "./pair_buffers.ts";
import { traceMemory } from "../util/memory_trace.ts";
import { escapeControl } from "../util/text.ts";

/** Default zstd level of tar-diff output. */
export const DEFAULT_TARDIFF_LEVEL = 9;

/**
 * At the default level the op stream's compressor searches 2^5 candidates per
 * position (zstd's level 10 depth) with level 9's tables and window, so the
 * same memory on both sides: on the corpus the tar-diffs come out 0.7% smaller
 * (deno's: 5,327,414 → 5,286,332 bytes) for 15% more compression time (0.12 s
 * on its 59 MB of ops). Other levels are zstd's own.
 */
const DEFAULT_LEVEL_SEARCH_LOG = 5;

/**
 * Sources up to this size get a full suffix array; larger ones a sparse one
 * (every 4th position). Measured on the 95 MB deno binary: sorting takes 7.5 s
 * instead of 17 s, the array a quarter of the memory, and the delta grows about
 * 1% (a match is found from its first sampled position; the backward extension
 * recovers the bytes before it). On text the loss is larger (typescript.js:
 * +15% at step 4), hence full sorting up to this size.
 */
export const FULL_SORT_LIMIT = 32 << 20;

/**
 * Files larger than this (source or target) are not diffed: the target goes out
 * as Data (unless the source holds identical content). Bounds memory at about
 * 3.6 times this per worker (source, sampled suffix array, target: the deno
 * binary's pair took 344 MB).
 */
export const MAX_DIFF_SIZE = 512 << 20;

/** Smallest target file worth a content-based source search. */
export const SIMILAR_MIN = 4096;
/** Source files (nearest in size) whose sketches are compared per target file. */
const SIMILAR_CANDIDATES = 6;
/** Least sketch overlap for a source found by content to be used. */
const SIMILAR_THRESHOLD = 0.3;
/** Bytes read for sketches per layer, at most: the search stops when they are spent. */
const SIMILAR_BUDGET = 256 << 20;

/** How changed files are diffed against their source (oci-delta's `--binary-diff`). */
export type BinaryDiff = "bsdiff" | "zstd" | "auto";

/** Default of {@link EncodeOptions.maxZstdSize}: 128 MiB, as oci-delta. */
export const DEFAULT_MAX_ZSTD_DIFF_SIZE = 128 << 20;
/** Default of {@link EncodeOptions.maxBsdiffSize}: 192 MiB, as oci-delta. */
export const DEFAULT_MAX_BSDIFF_SIZE = 192 << 20;
/** Default zstd level of ZstdDict frames (oci-delta's default). */
export const DEFAULT_ZSTD_DIFF_LEVEL = 3;

/** How to encode. */
export interface EncodeOptions {
  /** zstd level (1 to 19) of the tar-diff's op stream. */
  level?: number;
  /** How changed files are diffed (default bsdiff). */
  binaryDiff?: BinaryDiff;
  /** Level (1 to 19) of ZstdDict frames (default 3). */
  zstdLevel?: number;
  /** Window log of ZstdDict frames (10 to 29); default: per file pair, one that holds both files. */
  zstdWindowLog?: number;
  /** Files (old or new) this size or larger are not zstd-diffed; 0: no cap but the 512 MiB window (default 128 MiB). */
  maxZstdSize?: number;
  /** Files (old or new) this size or larger are not bsdiffed; 0: no cap but 512 MiB (default 192 MiB). */
  maxBsdiffSize?: number;
  /** Called with the number of target bytes just encoded. */
  progress?: (bytes: number) => void;
}

/** What an encoding did. */
export interface EncodeStats {
  /** Size of the target layer tar. */
  targetSize: number;
  /** Size of the op stream before compression. */
  opsSize: number;
  /** Files copied whole from an identical source file. */
  filesCopied: number;
  /** Files diffed against a similar source file (with bsdiff). */
  filesDiffed: number;
  /** Files sent as a ZstdDict frame against a similar source file. */
  filesZstd: number;
  /** Files sent as literal data. */
  filesLiteral: number;
  ops: OpCounts;
}

/** Receives the tar-diff blob's bytes in order. */
export type ByteSink = (chunk: Uint8Array) => Promise<void>;

/** One piece of the target layer's tar, in order: bytes kept verbatim, or a file's content. */
export type TargetPiece =
  | { type: "bytes"; bytes: Uint8Array }
  | { type: "zeros"; length: number }
  | { type: "content"; entry: TarEntry; object: string; size: number };

/** Where the encoder gets the target layer and the contents (of target and source files) from. */
export interface EncoderInput {
  /** The target layer's pieces, in tar order. */
  pieces(): AsyncIterable<TargetPiece>;
  /** Fills `into` with the first `into.length` bytes of content object `object`; returns `into`. */
  read(object: string, into: Uint8Array): Promise<Uint8Array>;
  /** The `size` bytes of content object `object`, in chunks (views valid until the next is asked for). */
  chunks(object: string, size: number): AsyncIterable<Uint8Array>;
}

/**
 * Finds a source by content for a file no name leads to: among the source files
 * nearest in size, the one whose content sketch shares the most with the
 * target's. Sketches read at most the first MiB of a file, are cached, and stop
 * being made when the layer's budget is spent, so a layer of new files costs a
 * bounded amount of reading.
 */
class SimilarFinder {
  #sketches = new Map<string, Set<number>>();
  #budget = SIMILAR_BUDGET;
  /** Where contents are read to be sketched (a sketch keeps none of them). */
  #page = new Uint8Array(SKETCH_BYTES);

  constructor(readonly input: EncoderInput, readonly catalog: SourceCatalog) {}

  async find(path: string, object: string, size: number): Promise<SourceFile | undefined> {
    if (size < SIMILAR_MIN || !isDeltaCandidate(path)) return undefined;
    const candidates = this.catalog.nearestInSize(size, SIMILAR_CANDIDATES).filter((f) => f.object !== object);
    if (candidates.length === 0) return undefined;
    const mine = await this.#sketch(object, size);
    if (!mine || mine.size < 4) return undefined;
    let best: SourceFile | undefined;
    let bestScore = SIMILAR_THRESHOLD;
    for (const c of candidates) {
      const theirs = await this.#sketch(c.object, c.size);
      if (!theirs) break;
      const score = overlap(mine, theirs);
      if (score > bestScore) {
        best = c;
        bestScore = score;
      }
    }
    return best;
  }

  async #sketch(hex: string, size: number): Promise<Set<number> | undefined> {
    const known = this.#sketches.get(hex);
    if (known) return known;
    const n = Math.min(size, SKETCH_BYTES);
    if (this.#budget < n) return undefined;
    this.#budget -= n;
    const s = sketch(await this.input.read(hex, this.#page.subarray(0, n)));
    this.#sketches.set(hex, s);
    return s;
  }
}

/** Streams an object's bytes as Data. */
async function literal(input: EncoderInput, hex: string, size: number, ops: OpWriter): Promise<void> {
  for await (const chunk of input.chunks(hex, size)) await ops.data(chunk);
}

/** The suffix-array sampling step for a source of `size` bytes. */
export function sortStep(size: number): number {
  return size <= FULL_SORT_LIMIT ? 1 : 4;
}

/** Sends the target as the matcher's `plan` against `source` (whose bytes `src` are): Copy/AddData/Seek/Data. */
async function emitPlan(ops: OpWriter, path: string, plan: Plan, src: Uint8Array, tgt: Uint8Array): Promise<void> {
  await ops.sourceAt(path, 0);
  const p = plan.entries;
  for (let i = 0; i < plan.length; i += 4) {
    const t = p[i];
    const s = p[i + 1];
    const add = p[i + 2];
    const extra = p[i + 3];
    if (add > 0) {
      await ops.seek(s);
      await ops.approximate(tgt, t, src, s, add);
    }
    if (extra > 0) await ops.data(tgt.subarray(t + add, t + add + extra));
  }
}

/** The bsdiff-style plan of `tgt` against `src` (suffix-sorted here). */
function planOf(src: Uint8Array, tgt: Uint8Array, buffers: PairBuffers): Plan {
  const step = sortStep(src.length);
  const sorted = Math.ceil(src.length / step);
  const ranks = step > 1 ? buffers.ints("ranks", sorted) : undefined;
  const sa = sparseSuffixArray(src, step, buffers.ints("sa", sorted), ranks);
  return planDiff(new MatchIndex(src, sa, step), tgt);
}

/** Diffs one target file against one source file into `ops`, bsdiff-style. */
async function diffFile(
  input: EncoderInput,
  source: SourceFile,
  target: { object: string; size: number },
  ops: OpWriter,
  buffers: PairBuffers,
): Promise<void> {
  traceMemory(() => `diff ${escapeControl(source.path)} ${source.size} start`);
  // Sort the source before reading the target, so the two never peak together.
  const src = await input.read(source.object, buffers.bytes("source", source.size));
  const step = sortStep(src.length);
  const sorted = Math.ceil(src.length / step);
  // Block ranks (sparse sorting only), sized to take the target once they are spent.
  const ranks = step > 1 ? buffers.ints("ranks", Math.max(sorted, Math.ceil(target.size / 4))) : undefined;
  // A sparse sort needs the source's bytes only to rank its blocks, and uses their
  // memory for its bucket tables (45 MB on the deno binary); they are read again.
  const sa = sparseSuffixArray(src, step, buffers.ints("sa", sorted), ranks, step > 1);
  if (step > 1) await input.read(source.object, src);
  traceMemory(() => `diff ${escapeControl(source.path)} sorted`);
  const index = new MatchIndex(src, sa, step);
  // The block ranks are spent once the array is sorted: the target can live in their memory.
  const tgtBuf = ranks && ranks.byteLength >= target.size
    ? new Uint8Array(ranks.buffer, ranks.byteOffset, target.size)
    : buffers.bytes("target", target.size);
  const tgt = await input.read(target.object, tgtBuf);
  const plan = planDiff(index, tgt);
  traceMemory(() => `diff ${escapeControl(source.path)} planned`);
  await emitPlan(ops, source.path, plan, src, tgt);
}

/** Whether a file pair is within a method's limit (`max` 0: only the hard cap). */
function within(a: number, b: number, max: number, cap: number): boolean {
  return a <= cap && b <= cap && (max === 0 || (a < max && b < max));
}

/**
 * Diffs a changed file against its source as `options.binaryDiff` says, within
 * each method's limits; returns what went out ("literal": nothing, the caller
 * sends the file as Data).
 */
async function diffChanged(
  input: EncoderInput,
  source: SourceFile,
  target: { object: string; size: number },
  ops: OpWriter,
  buffers: PairBuffers,
  options: EncodeOptions,
): Promise<"bsdiff" | "zstd" | "literal"> {
  const mode = options.binaryDiff ?? "bsdiff";
  const zstdMax = options.maxZstdSize ?? DEFAULT_MAX_ZSTD_DIFF_SIZE;
  const bsdiffMax = options.maxBsdiffSize ?? DEFAULT_MAX_BSDIFF_SIZE;
  const zstdOk = mode !== "bsdiff" && within(target.size, source.size, zstdMax, MAX_DICTIONARY_SIZE);
  const bsdiffOk = mode !== "zstd" && within(target.size, source.size, bsdiffMax, MAX_DIFF_SIZE);
  if (!zstdOk) {
    if (!bsdiffOk) return "literal";
    await diffFile(input, source, target, ops, buffers);
    return "bsdiff";
  }
  // Both files back to back: the frame's history, and (auto) bsdiff's input.
  const joined = buffers.bytes("joined", source.size + target.size);
  await input.read(source.object, joined.subarray(0, source.size));
  await input.read(target.object, joined.subarray(source.size));
  const frame = zstdPatchJoined(joined, source.size, { level: options.zstdLevel, windowLog: options.zstdWindowLog });
  const useful = frame.length < target.size; // a patch not smaller than the file goes out as Data
  if (bsdiffOk) {
    const src = joined.subarray(0, source.size), tgt = joined.subarray(source.size);
    const plan = planOf(src, tgt, buffers);
    // Compare what each costs in the tar-diff: compressed, as the op stream will be.
    const level = Math.min(options.level ?? DEFAULT_TARDIFF_LEVEL, 3);
    const planned: Uint8Array[] = [];
    const scratch = new OpWriter((chunk) => Promise.resolve(void planned.push(chunk)));
    await emitPlan(scratch, source.path, plan, src, tgt);
    await scratch.end();
    const cost = (parts: Uint8Array[]) =>
      parts.length === 0 ? 0 : zlib.zstdCompressSync(Buffer.concat(parts), {
        params: { [zlib.constants.ZSTD_c_compressionLevel]: level },
      }).length;
    if (!useful || cost(planned) < cost([frame])) {
      await emitPlan(ops, source.path, plan, src, tgt);
      return "bsdiff";
    }
  }
  if (!useful) return "literal";
  await ops.zstdDict(source.path, source.size, frame, target.size);
  return "zstd";
}

/** A zstd compression stage with the given level and a content checksum. */
function zstdStage(level: number): { readable: ReadableStream<Uint8Array>; writable: WritableStream<Uint8Array> } {
  const z = zlib.createZstdCompress({
    chunkSize: 1 << 18,
    params: {
      [zlib.constants.ZSTD_c_compressionLevel]: level,
      [zlib.constants.ZSTD_c_checksumFlag]: 1,
      ...(level === DEFAULT_TARDIFF_LEVEL ? { [zlib.constants.ZSTD_c_searchLog]: DEFAULT_LEVEL_SEARCH_LOG } : {}),
    },
  });
  return Duplex.toWeb(z) as unknown as {
    readable: ReadableStream<Uint8Array>;
    writable: WritableStream<Uint8Array>;
  };
}

/**
 * Encodes the target layer `input` gives as a tar-diff against `catalog`,
 * writing the blob (magic, then the zstd stream) to `out` as it is produced.
 */
export async function encodeLayer(
  input: EncoderInput,
  catalog: SourceCatalog,
  out: ByteSink,
  options: EncodeOptions = {},
): Promise<EncodeStats> {
  const level = options.level ?? DEFAULT_TARDIFF_LEVEL;
  await out((options.binaryDiff ?? "bsdiff") === "bsdiff" ? TARDIFF_MAGIC.slice() : TARDIFF_MAGIC_V2.slice());
  const stage = zstdStage(level);
  const pump = (async () => {
    for await (const chunk of stage.readable) await out(chunk);
  })();
  const writer = stage.writable.getWriter();
  const ops = new OpWriter(async (chunk) => {
    await writer.ready;
    await writer.write(chunk);
  });
  const stats: EncodeStats = {
    targetSize: 0,
    opsSize: 0,
    filesCopied: 0,
    filesDiffed: 0,
    filesZstd: 0,
    filesLiteral: 0,
    ops: ops.counts,
  };
  const buffers = new PairBuffers();
  const similar = new SimilarFinder(input, catalog);
  let reported = 0;
  const report = () => {
    if (options.progress && ops.outputSize > reported) {
      options.progress(ops.outputSize - reported);
      reported = ops.outputSize;
    }
  };
  try {
    for await (const piece of input.pieces()) {
      if (piece.type === "bytes") {
        await ops.data(piece.bytes);
        continue;
      }
      if (piece.type === "zeros") {
        await ops.zeros(piece.length);
        continue;
      }
      const { entry, object, size } = piece;
      const same = entry.kind === "file" ? catalog.identical(object) : undefined;
      if (same && same.size === size) {
        await ops.sourceAt(same.path, 0);
        await ops.copy(size);
        stats.filesCopied++;
      } else {
        const source = entry.kind === "file" && size <= MAX_DIFF_SIZE
          ? catalog.byNameFor(entry.path, size) ?? await similar.find(entry.path, object, size)
          : undefined;
        const how = source && source.size <= MAX_DIFF_SIZE
          ? await diffChanged(input, source, { object, size }, ops, buffers, options).finally(() => buffers.spent())
          : "literal";
        if (how === "bsdiff") stats.filesDiffed++;
        else if (how === "zstd") stats.filesZstd++;
        else {
          await literal(input, object, size, ops);
          stats.filesLiteral++;
        }
      }
      report();
    }
    await ops.end();
    report();
    await writer.close();
    await pump;
  } catch (e) {
    await writer.abort(e).catch(() => {});
    await pump.catch(() => {});
    throw e;
  } finally {
    buffers.release();
  }
  stats.targetSize = ops.outputSize;
  stats.opsSize = ops.written;
  return stats;
}
