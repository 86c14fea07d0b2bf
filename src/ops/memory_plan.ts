/**
 * What `--memory-limit` (issue 15) turns into: how many layer threads a command
 * may run and how many bytes of source files (tar-diff version 2 dictionaries)
 * its rebuilds may hold, so that deltaship's own buffers stay within the limit.
 * The runtime itself (the Deno binary's pages and the main isolate, ~47-60 MiB
 * resident) is not counted: the limit is what deltaship adds to it.
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
