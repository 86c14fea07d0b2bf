/**
 * The task catalogue of layer work: the CPU-heavy units (import a layer blob,
 * rebuild a layer from a tar-diff, compress a block or the frames of an exported layer,
 * encode a tar-diff) that run in Web Workers, or inline when only one runs at a
 * time. Each kind lives beside its implementation; this module only gathers
 * them (fan_out.ts opens pools of them, layer_worker.ts serves them).
 *
 * @module
 */
import type { EncodeTask, TarDiffFile } from "../delta/encode_layer.ts";
import { rebuildTaskKind } from "../delta/rebuild.ts";
import { importTaskKind } from "../repo/layer_import.ts";
import type { SyncMode } from "../repo/durability.ts";
import { Repository } from "../repo/repository.ts";
import { compressTaskKind } from "../compression/block_compress.ts";
import { framesTaskKind } from "../compression/frames.ts";
import type { TaskKind, TaskKinds, WorkerPool } from "../util/worker_pool.ts";

/** Every layer task kind, run against `repo`. */
export function layerTaskKinds(repo: Repository) {
  return {
    import: importTaskKind(repo),
    rebuild: rebuildTaskKind(repo),
    encode: lazyEncodeKind(repo),
    compress: compressTaskKind,
    frames: framesTaskKind,
  };
}

/**
 * The "encode" kind, its module (the tar-diff encoder: suffix sorting, bsdiff,
 * the zstd encoders) imported on the first encode task: a worker that only
 * imports or rebuilds layers never loads it (~3 MiB per worker, issue 15).
 */
function lazyEncodeKind(repo: Repository): TaskKind<EncodeTask, TarDiffFile> {
  let kind: Promise<TaskKind<EncodeTask, TarDiffFile>> | undefined;
  return {
    async run(task, progress) {
      kind ??= import("../delta/encode_layer.ts").then((m) => m.encodeTaskKind(repo));
      return await (await kind).run(task, progress);
    },
  };
}

type Kinds = ReturnType<typeof layerTaskKinds>;

/** The catalogue: each kind's task and result. */
export type LayerTasks = {
  [K in keyof Kinds]: Kinds[K] extends TaskKind<infer T, infer R> ? { task: T & object; result: R } : never;
};

/** A pool of layer tasks. */
export type LayerPool = WorkerPool<LayerTasks>;

/** What a worker needs to open the repository its parent works on. */
export interface LayerTaskContext {
  repoRoot: string;
  tempDir: string;
  /** How the parent makes commits durable; the worker does the same. */
  sync: SyncMode;
}

/** The kinds a worker runs for `context`, against the repository it names (opened once per context). */
export function workerTaskKinds(): (context: unknown) => Promise<TaskKinds<LayerTasks>> {
  const repos = new Map<string, Promise<TaskKinds<LayerTasks>>>();
  return (context) => {
    const { repoRoot, tempDir, sync } = context as LayerTaskContext;
    const key = `${repoRoot}\0${tempDir}`;
    let kinds = repos.get(key);
    if (!kinds) {
      kinds = Repository.open(repoRoot, { tempDir, sync }).then((r) => layerTaskKinds(r) as TaskKinds<LayerTasks>);
      repos.set(key, kinds);
    }
    return kinds;
  };
}
