/**
 * The one layer fan-out every operation uses: a pool of layer tasks opened for
 * the work, the items run at most `parallel` at once (largest first, so the
 * longest task starts at once and smaller ones fill the other slots, unless the
 * order matters), each shown as a progress unit from start to finish, and the
 * pool closed whatever happens.
 *
 * @module
 */
import type { OnBytes, ProgressSink } from "../util/progress.ts";
import { silentProgress } from "../util/progress.ts";
import { traceMemory } from "../util/memory_trace.ts";
import { type PoolOptions, type TaskKinds, WorkerPool } from "../util/worker_pool.ts";
import type { Repository } from "../repo/repository.ts";
import { type LayerPool, type LayerTaskContext, layerTaskKinds, type LayerTasks } from "./layer_tasks.ts";

/** The worker module that serves layer tasks. */
const LAYER_WORKER = new URL("./layer_worker.ts", import.meta.url);

/** Opens a pool of `size` slots running layer tasks against `repo`. */
export function openLayerPool(
  repo: Repository,
  size: number,
  options: Omit<PoolOptions<LayerTasks>, "worker" | "kinds" | "context"> = {},
): LayerPool {
  const context: LayerTaskContext = { repoRoot: repo.root, tempDir: repo.tempDir, sync: repo.durability.mode };
  return new WorkerPool<LayerTasks>(size, {
    ...options,
    worker: LAYER_WORKER,
    kinds: layerTaskKinds(repo) as TaskKinds<LayerTasks>,
    context,
  });
}

/** How an item of a fan-out shows in progress, and how big it is. */
export interface FanOutUnit {
  /** Progress id (a layer's digest). */
  id: string;
  /** Progress label (`layer 2/5`). */
  label: string;
  /** Bytes the progress counts to (0 when unknown). */
  total: number;
  /** Size for ordering, largest first (default `total`). */
  size?: number;
}

/** How to fan out. */
export interface FanOutOptions<T> {
  /** Pool slots (threads). */
  jobs: number;
  /** Items run at once (default `jobs`). */
  parallel?: number;
  /** Keep the items' order instead of starting the largest first. */
  inOrder?: boolean;
  progress?: ProgressSink;
  /** An item's progress unit. */
  unit(item: T): FanOutUnit;
  /** How an item's progress line ends (default "done"). */
  note?(item: T): string;
  /** Pool options (calling thread, workers only). */
  pool?: Omit<PoolOptions<LayerTasks>, "worker" | "kinds" | "context">;
  /** Work done once the workers are starting and before the first item (overlaps their start-up). */
  prepare?(): Promise<void>;
  /**
   * Run every item on the calling thread when the largest is at least this many
   * times the size of all the others together: what a worker would take off the
   * calling thread is then too little to pay for its start-up and memory.
   */
  oneThreadWhenDominant?: number;
}

/**
 * The threads a fan-out uses: `jobs`, at most one per item, and one alone when
 * `dominant` is given and the largest item's size is at least `dominant` times
 * the others' sum.
 */
export function fanOutSlots(jobs: number, sizes: readonly number[], dominant?: number): number {
  const slots = Math.max(1, Math.min(jobs, sizes.length));
  if (slots === 1 || dominant === undefined) return slots;
  const largest = Math.max(...sizes);
  const rest = sizes.reduce((a, b) => a + b, 0) - largest;
  return largest >= dominant * rest ? 1 : slots;
}

/**
 * Runs `work` for each item on a layer pool of `repo` and returns the results in
 * the items' order. `onBytes` advances the item's progress unit.
 */
export async function fanOut<T, R>(
  repo: Repository,
  items: readonly T[],
  options: FanOutOptions<T>,
  work: (pool: LayerPool, item: T, onBytes: OnBytes) => Promise<R>,
): Promise<R[]> {
  const progress = options.progress ?? silentProgress;
  const units = items.map((item) => options.unit(item));
  const slots = fanOutSlots(options.jobs, units.map((u) => u.size ?? u.total), options.oneThreadWhenDominant);
  traceMemory(`fan-out of ${items.length} on ${slots} slots`);
  const pool = openLayerPool(repo, slots, options.pool);
  try {
    if (options.prepare) {
      pool.warm();
      await options.prepare();
      traceMemory("fan-out prepared");
    }
    // Rows in the items' order, whatever order they start in (largest first).
    for (const { id, label, total } of units) progress.queue?.(id, label, total);
    const order = items.map((_, i) => i);
    if (!options.inOrder) order.sort((a, b) => (units[b].size ?? units[b].total) - (units[a].size ?? units[a].total));
    const results = new Array<R>(items.length);
    let next = 0;
    let failed = false;
    const lane = async () => {
      while (next < order.length && !failed) {
        const i = order[next++];
        const { id, label, total } = units[i];
        progress.start(id, label, total);
        try {
          results[i] = await work(pool, items[i], (n) => progress.advance(id, n));
        } catch (e) {
          failed = true; // no further item starts; those in flight are stopped below
          throw e;
        }
        progress.finish(id, options.note?.(items[i]) ?? "done");
      }
    };
    const lanes = Math.max(1, Math.min(options.parallel ?? slots, items.length));
    try {
      await Promise.all(Array.from({ length: lanes }, lane));
    } catch (e) {
      // Let the items in flight stop cleanly (or finish committing) before the pool goes.
      await pool.stop(e);
      throw e;
    }
    traceMemory("fan-out done");
    return results;
  } finally {
    pool.close();
  }
}
