/**
 * Layer tasks: the CPU-heavy units of work (import a layer blob, rebuild a layer
 * from a tar-diff, compress a block of an exported layer, encode a tar-diff)
 * that run in Web Workers, or inline when only one runs at a time.
 * Tasks are plain data plus transferable streams, so they can cross a Worker boundary.
 *
 * @module
 */
import { type RebuildLayer, rebuildLayer } from "../delta/rebuild.ts";
import type { SourceIndex } from "../delta/source.ts";
import { importLayerBlob, type LayerBlob } from "../repo/layer_import.ts";
import type { RecordFooter } from "../repo/layer_record.ts";
import type { LayerLimits } from "../repo/layer_writer.ts";
import type { Repository } from "../repo/repository.ts";
import { encodeLayerToFile, type TarDiffFile } from "../tardiff/encode.ts";
import { type BlockJob, compressBlock } from "../util/block_compress.ts";
import type { Digest } from "../util/digest.ts";

/** Import a (compressed) layer blob streamed in `blob`. */
export interface ImportTask {
  op: "import";
  layer: LayerBlob;
  blob: ReadableStream<Uint8Array>;
  limits: LayerLimits;
}

/** Encode the stored layer `target` as a tar-diff against the layers `source`, into the file `out`. */
export interface EncodeTask {
  op: "encode";
  /** diff_ids of the source image's layers, bottom first. */
  source: Digest[];
  /** Source paths under these prefixes are not used. */
  ignoredPrefixes: string[];
  target: Digest;
  /** Path of the tar-diff file to create. */
  out: string;
  /** zstd level. */
  level: number;
}

/**
 * Rebuild a layer from the tar-diff streamed in `blob`, against the source image
 * whose files `source` indexes (built once by the caller, cloned to each worker).
 */
export interface RebuildTask {
  op: "rebuild";
  layer: RebuildLayer;
  blob: ReadableStream<Uint8Array>;
  source: SourceIndex;
  /** The pull's shared budget for source files held in memory (a MemoryBudget's buffer). */
  memory: SharedArrayBuffer;
  limits: LayerLimits;
}

/** Compress one block of a layer being exported (see util/block_compress.ts). */
export interface CompressTask {
  op: "compress";
  job: BlockJob;
}

/** Any task a worker can run. */
export type Task = ImportTask | RebuildTask | CompressTask | EncodeTask;

/** What a finished task reports: a stored layer's totals, compressed bytes, or a tar-diff file. */
export type TaskResult = RecordFooter | Uint8Array | TarDiffFile;

/** Runs one task against `repo`, reporting consumed input bytes to `progress`. */
export async function runTask(repo: Repository, task: Task, progress: (bytes: number) => void): Promise<TaskResult> {
  switch (task.op) {
    case "import":
      return await importLayerBlob(repo, task.blob, task.layer, task.limits, progress);
    case "encode":
      return await encodeLayerToFile(repo, task.source, task.ignoredPrefixes, task.target, task.out, {
        level: task.level,
        progress,
      });
    case "rebuild":
      return await rebuildLayer(repo, task.blob, task.layer, task.source, task.memory, task.limits, progress);
    case "compress":
      return compressBlock(task.job);
  }
}

/** The objects of a task that must be transferred, not copied, to a worker. */
export function transferables(task: Task): Transferable[] {
  if (task.op === "compress") return [task.job.data.buffer as ArrayBuffer];
  if (task.op === "encode") return [];
  return [task.blob as unknown as Transferable];
}
