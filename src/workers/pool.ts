/**
 * A pool for layer tasks. Runs up to `size` tasks at once: one on the calling
 * thread (which otherwise only feeds streams) and the rest each in its own Web
 * Worker. With a size of one, tasks run inline, one at a time, unless the pool
 * is told to keep the calling thread free (`workersOnly`). Running one task
 * inline spares a worker's start-up and the copying of its input across threads;
 * measured on the corpus pull, it made `-j 2` as fast as `-j 1` where two workers
 * had made it slower.
 *
 * @module
 */
import { deserializeError } from "../errors.ts";
import type { Repository } from "../repo/repository.ts";
import { runTask, type Task, type TaskResult, transferables } from "./tasks.ts";
import type { TaskMessage, WorkerReply } from "./layer_worker.ts";

const WORKER_URL = new URL("./layer_worker.ts", import.meta.url);

/** The calling thread, as a place to run a task. */
const INLINE = "inline";
type Slot = Worker | typeof INLINE;

interface Pending {
  resolve(result: TaskResult): void;
  reject(err: Error): void;
  progress(bytes: number): void;
}

/** How a {@link TaskPool} runs tasks. */
export interface PoolOptions {
  /**
   * Run one of the `size` tasks on the calling thread (default true). Turn it off
   * when the calling thread has steady work of its own (export reads layers and
   * writes the output while workers compress).
   */
  useCallingThread?: boolean;
  /**
   * Run every task in a worker, even with a size of one (default false). For
   * tasks that hold their thread for seconds without yielding (the tar-diff
   * encoder's suffix sort): on the calling thread they would keep SIGINT and
   * SIGTERM from being answered.
   */
  workersOnly?: boolean;
  /** Starts one worker (tests substitute a failing one). */
  startWorker?: () => Worker;
}

/** Runs layer tasks, up to `size` at once. */
export class TaskPool {
  #size: number;
  /** Most workers: `size`, less the calling thread's slot when it takes tasks. */
  #maxWorkers: number;
  #startWorker: () => Worker;
  #workers: Worker[] = [];
  #idle: Worker[] = [];
  #waiting: { resolve(slot: Slot): void; reject(e: Error): void }[] = [];
  /** The calling thread's slot is free. */
  #inlineFree = true;
  #pending = new Map<number, Pending>();
  #running = new Map<Worker, number>();
  #nextId = 1;
  #closed = false;

  constructor(readonly repo: Repository, size: number, options: PoolOptions = {}) {
    this.#size = Math.max(1, size);
    this.#inlineFree = !options.workersOnly && (this.#size === 1 || options.useCallingThread !== false);
    this.#maxWorkers = this.#inlineFree ? this.#size - 1 : this.#size;
    this.#startWorker = options.startWorker ?? (() => new Worker(WORKER_URL, { type: "module" }));
  }

  /** True when every task runs on the calling thread. */
  get inline(): boolean {
    return this.#maxWorkers === 0;
  }

  /**
   * Runs a task. `make` builds it once a worker is free, so that work it starts (a
   * download, a file read) begins only when it can be consumed.
   */
  async run(make: () => Promise<Task>, progress: (bytes: number) => void = () => {}): Promise<TaskResult> {
    const slot = await this.#acquire();
    try {
      if (this.#closed) throw new Error("worker pool closed");
      const task = await make();
      if (slot === INLINE) return await runTask(this.repo, task, progress);
      if (this.#closed) {
        for (const t of transferables(task)) if (t instanceof ReadableStream) t.cancel().catch(() => {});
        throw new Error("worker pool closed");
      }
      const sourceError = keepStreamErrors(task);
      try {
        return await this.#send(slot, task, progress);
      } catch (e) {
        throw sourceError() ?? e;
      }
    } finally {
      this.#release(slot);
    }
  }

  /**
   * Starts the workers now rather than on first use, so that their start-up
   * overlaps whatever the caller does before its first task.
   */
  warm(): void {
    if (this.#closed) return;
    while (this.#workers.length < this.#maxWorkers) this.#idle.push(this.#spawn());
  }

  /** Stops every worker; tasks still running fail. */
  close(): void {
    this.#closed = true;
    for (const w of this.#workers) w.terminate();
    for (const p of this.#pending.values()) p.reject(new Error("worker pool closed"));
    this.#pending.clear();
    for (const w of this.#waiting) w.reject(new Error("worker pool closed"));
    this.#waiting = [];
    this.#workers = [];
    this.#idle = [];
  }

  /** A free slot: the calling thread's first, then an idle worker, then a new one; else waits. */
  async #acquire(): Promise<Slot> {
    if (this.#closed) throw new Error("worker pool closed");
    if (this.#inlineFree) {
      this.#inlineFree = false;
      return INLINE;
    }
    const idle = this.#idle.pop();
    if (idle) return idle;
    if (this.#workers.length < this.#maxWorkers) return this.#spawn();
    return await new Promise((resolve, reject) => this.#waiting.push({ resolve, reject }));
  }

  #release(slot: Slot): void {
    if (this.#closed) return;
    const next = this.#waiting.shift();
    if (slot === INLINE) {
      if (next) next.resolve(INLINE);
      else this.#inlineFree = true;
      return;
    }
    const alive = this.#workers.includes(slot);
    if (next) next.resolve(alive ? slot : this.#spawn());
    else if (alive) this.#idle.push(slot);
  }

  /** Workers that failed before their task reached them, with why. */
  #failed = new WeakMap<Worker, string>();

  /** Forgets a worker that failed (it could not load, or crashed): it gets no more tasks. */
  #discard(worker: Worker, why: string): void {
    this.#failed.set(worker, why);
    worker.terminate();
    this.#workers = this.#workers.filter((w) => w !== worker);
    this.#idle = this.#idle.filter((w) => w !== worker);
  }

  #spawn(): Worker {
    const worker = this.#startWorker();
    worker.onmessage = (e: MessageEvent<WorkerReply>) => {
      const msg = e.data;
      const p = this.#pending.get(msg.id);
      if (!p) return;
      if (msg.type === "progress") {
        p.progress(msg.bytes);
        return;
      }
      this.#pending.delete(msg.id);
      this.#running.delete(worker);
      if (msg.type === "done") p.resolve(msg.result as TaskResult);
      else p.reject(deserializeError(msg.error));
    };
    worker.onerror = (e: ErrorEvent) => {
      e.preventDefault();
      this.#discard(worker, e.message);
      const id = this.#running.get(worker);
      this.#running.delete(worker);
      const p = id === undefined ? undefined : this.#pending.get(id);
      if (p && id !== undefined) {
        this.#pending.delete(id);
        p.reject(new Error(`layer worker failed: ${e.message}`));
      }
    };
    this.#workers.push(worker);
    return worker;
  }

  #send(worker: Worker, task: Task, progress: (bytes: number) => void): Promise<TaskResult> {
    const id = this.#nextId++;
    const failure = this.#failed.get(worker);
    if (failure !== undefined) {
      for (const t of transferables(task)) if (t instanceof ReadableStream) t.cancel().catch(() => {});
      return Promise.reject(new Error(`layer worker failed: ${failure}`));
    }
    return new Promise<TaskResult>((resolve, reject) => {
      this.#pending.set(id, { resolve, reject, progress });
      this.#running.set(worker, id);
      const msg: TaskMessage = {
        id,
        repoRoot: this.repo.root,
        tempDir: this.repo.tempDir,
        sync: this.repo.durability.mode,
        task,
      };
      worker.postMessage(msg, transferables(task));
    });
  }
}

/**
 * Errors cloned across a Worker boundary lose their class (a TransportError from a
 * download arrives as a plain Error, and the worker then reports it as corrupt
 * data). This wraps each input stream of `task` so the error its source failed
 * with is kept here; the pool reports that one when the task fails.
 */
function keepStreamErrors(task: Task): () => unknown {
  let error: unknown;
  const fields = task as unknown as Record<string, unknown>;
  for (const [key, value] of Object.entries(fields)) {
    if (!(value instanceof ReadableStream)) continue;
    const reader = (value as ReadableStream<Uint8Array>).getReader();
    fields[key] = new ReadableStream<Uint8Array>({
      async pull(controller) {
        let r: ReadableStreamReadResult<Uint8Array>;
        try {
          r = await reader.read();
        } catch (e) {
          error ??= e;
          throw e;
        }
        if (r.done) controller.close();
        else controller.enqueue(r.value);
      },
      cancel(reason) {
        return reader.cancel(reason);
      },
    }, { highWaterMark: 0 });
  }
  return () => error;
}
