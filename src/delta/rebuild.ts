/**
 * Rebuilding one target layer from its tar-diff: the delta blob is verified
 * against its descriptor as it streams in, the tar-diff runs against the source
 * image's files, and the rebuilt tar is hashed against the layer's diff_id and
 * stored, in one pass. Runs in a layer worker (or inline).
 *
 * @module
 */
import type { RecordFooter } from "../repo/layer_record.ts";
import { type LayerLimits, storeLayerTar } from "../repo/layer_writer.ts";
import type { OnBytes } from "../util/progress.ts";
import type { TaskKind } from "../util/worker_pool.ts";
import type { Repository } from "../repo/repository.ts";
import { applyTarDiff } from "../tardiff/apply.ts";
import { type DiffId, type Digest, Verifier, verifying } from "../util/digest.ts";
import { MemoryBudget, ObjectSource, type SourceIndex } from "./source_files.ts";
import { traceMemory } from "../util/memory_trace.ts";

/** A target layer to rebuild and the tar-diff blob it is rebuilt from. */
export interface RebuildLayer {
  /** The target layer's blob digest (as the target manifest lists it). */
  digest: Digest;
  /** The target layer's diff_id: what the rebuilt tar must hash to. */
  diffId: DiffId;
  /** The tar-diff blob's descriptor in the delta. */
  delta: { digest: Digest; size: number };
}

/**
 * Rebuild a layer from the tar-diff streamed in `blob`, against the source image
 * whose files `source` indexes (built once by the caller, cloned to each worker):
 * the "rebuild" task.
 */
export interface RebuildTask {
  layer: RebuildLayer;
  blob: ReadableStream<Uint8Array>;
  source: SourceIndex;
  /** The pull's shared budget for source files held in memory (a MemoryBudget's buffer). */
  memory: SharedArrayBuffer;
  limits: LayerLimits;
}

/** The "rebuild" task kind, into `repo`. Progress counts delta bytes consumed. */
export function rebuildTaskKind(repo: Repository): TaskKind<RebuildTask, RecordFooter> {
  return {
    run: (task, progress) => rebuildLayer(repo, task.blob, task.layer, task.source, task.memory, task.limits, progress),
  };
}

/**
 * Rebuilds `layer` from the tar-diff streamed in `blob` against `source`, and
 * stores it. `memory` is the pull's {@link MemoryBudget} for source files held in
 * memory.
 */
export async function rebuildLayer(
  repo: Repository,
  blob: ReadableStream<Uint8Array>,
  layer: RebuildLayer,
  source: SourceIndex,
  memory: SharedArrayBuffer,
  limits: LayerLimits,
  onProgress?: OnBytes,
): Promise<RecordFooter> {
  const what = `layer ${layer.digest} (tar-diff ${layer.delta.digest})`;
  const verifier = new Verifier(`tar-diff ${layer.delta.digest}`, layer.delta.digest, layer.delta.size);
  const checked = blob.pipeThrough(verifying(verifier, onProgress));
  const budget = new MemoryBudget(memory);
  const files = new ObjectSource(repo.objects, source, budget);
  traceMemory(`rebuild start ${layer.digest.slice(7, 19)}`);
  try {
    // An AddData is bounded by its source file, and its output by the layer size limit, as every op's. The output
    // batch that gathers small source reads grows from the same budget as dictionaries, except under a
    // --memory-limit: growing trades memory for fewer read calls, and a limit says which of the two matters.
    // The blob's chunks pass only through the verifier, so the interpreter may free each once decoded.
    const tuning = { memory: budget, freeInput: true, ...(budget.limited ? { maxBatchSize: 0 } : {}) };
    return await storeLayerTar(repo, applyTarDiff(checked, files, tuning), layer.diffId, what, limits);
  } finally {
    traceMemory(`rebuild end ${layer.digest.slice(7, 19)}`);
    files.release();
  }
}
