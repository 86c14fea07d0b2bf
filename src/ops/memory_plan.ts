/**
 * What `--memory-limit` (issue 15) turns into: how many layer threads a command
 * may run and how many bytes of source files (tar-diff version 2 dictionaries)
 * its rebuilds may hold, so that deltaship's own buffers stay within the limit.
 * The runtime itself (the Deno binary's pages and the main isolate, ~47-60 MiB
 * resident) is not counted: the limit is what deltaship adds to it.
 *
 * create-delta's memory is the encoder's: both files of a pair it diffs, and
 * for bsdiff the suffix array of the old one ({@link encodePlan}).
 *
 * The costs are measured, not derived (`DELTASHIP_MEMORY_TRACE=1`, see
 * docs/design.md "Where the memory goes"): a layer task on a thread holds its
 * decoder windows (a tar-diff's zstd stream asks for up to 8 MiB), its output,
 * decode and hash buffers and its share of heap growth; a worker is a second
 * isolate with its own copy of the module graph and the Node compatibility
 * layer.
 *
 * @module
 */
import { SOURCE_MEMORY } from "../delta/source_files.ts";
import { FULL_SORT_LIMIT } from "../tardiff/encode.ts";

const MIB = 1 << 20;
/** Resident memory one running layer task adds, on whichever thread (measured 15-25 MiB). */
export const TASK_MEMORY = 24 * MIB;
/** Resident memory a worker adds before it runs anything (measured 27-31 MiB). */
export const WORKER_MEMORY = 32 * MIB;

/** How a command runs within a memory limit. */
export interface MemoryPlan {
  /** Layer threads: the calling thread plus `jobs - 1` workers. */
  jobs: number;
  /** Bytes of source files all rebuilds together may hold (the MemoryBudget). */
  sourceMemory: number;
  /** The limit this plan keeps to (undefined: none). */
  limit?: number;
}

/**
 * The plan for `limit` bytes (undefined: no limit, `jobs` threads and the
 * default {@link SOURCE_MEMORY}): as many of the `jobs` threads as fit, at least
 * one, and what is left of the limit for source files. A limit too small for
 * even one task still runs (one thread, no dictionary room): slower, and a
 * version-2 tar-diff then fails naming the file and the limit.
 */
export function memoryPlan(limit: number | undefined, jobs: number): MemoryPlan {
  if (limit === undefined) return { jobs, sourceMemory: SOURCE_MEMORY };
  const fit = 1 + Math.floor((limit - TASK_MEMORY) / (TASK_MEMORY + WORKER_MEMORY));
  const threads = Math.max(1, Math.min(jobs, fit));
  const left = limit - threads * TASK_MEMORY - (threads - 1) * WORKER_MEMORY;
  return { jobs: threads, sourceMemory: Math.max(0, Math.min(SOURCE_MEMORY, left)), limit };
}

/**
 * Resident bytes the tar-diff encoder holds per byte of the larger file of a
 * pair it diffs, measured on the corpus: 6 for a file it sorts fully (up to
 * FULL_SORT_LIMIT, 32 MiB: both files and the suffix array, 4 bytes per byte;
 * _tsc.js, 6.2 MB, took 35 MB), 4 for a larger one whose suffix array is
 * sampled (both files, the array and the block ranks the target then reuses:
 * the 95 MB deno binary took 344 MB, 3.6 per byte).
 */
export const ENCODE_MEMORY_PER_BYTE = { full: 6, sampled: 4 } as const;
/**
 * What an encode task holds besides the file pair: its worker, the op stream's
 * zstd compressor (level 9) and buffers (with a 128 MiB limit the corpus
 * create-delta peaked at 190 MiB: the runtime's ~60 plus the limit).
 */
export const ENCODE_TASK_MEMORY = 48 * MIB;

/** How create-delta runs within a memory limit. */
export interface EncodePlan {
  /** Layer threads. */
  jobs: number;
  /** Files this size or larger are carried as data, not diffed (undefined: the usual caps). */
  maxDiffSize?: number;
}

/**
 * create-delta's plan for `limit` bytes: one thread (one file pair held at a
 * time), and no file diffed whose pair would not fit in what is left of the
 * limit; such files go into the tar-diff as data, so the delta is larger but
 * still right.
 */
export function encodePlan(limit: number | undefined, jobs: number): EncodePlan {
  if (limit === undefined) return { jobs };
  const room = limit - ENCODE_TASK_MEMORY;
  // Past FULL_SORT_LIMIT a file costs less per byte; the cap is one size, so that range counts only when all of
  // the fully sorted range fits too.
  const full = Math.floor(room / ENCODE_MEMORY_PER_BYTE.full);
  const max = full >= FULL_SORT_LIMIT ? Math.floor(room / ENCODE_MEMORY_PER_BYTE.sampled) : full;
  return { jobs: 1, maxDiffSize: Math.max(1, max) };
}
