/**
 * A generic pool of Web Workers for CPU-heavy tasks. Runs up to `size` tasks at
 * once: one on the calling thread (which otherwise only feeds streams) and the
 * rest each in its own worker. With a size of one, tasks run inline, one at a
 * time, unless the pool is told to keep the calling thread free (`workersOnly`).
 * Running one task inline spares a worker's start-up and the copying of its
 * input across threads; measured on the corpus pull, it made `-j 2` as fast as
 * `-j 1` where two workers had made it slower.
 *
 * The pool knows nothing of what its tasks do: a *catalogue* type maps each kind
 * of task to its input and result, the caller gives the kinds' implementations
 * (for tasks run inline) and the worker module, which serves the same kinds
 * with {@link serveTasks}. Every task message carries the caller's `context`
 * (plain data, e.g. where the repository is) so a worker can build its kinds.
 *
 * @module
 */
import { deserializeError, type SerializedError, serializeError } from "../errors.ts";

/** One kind of task: how to run it on the current thread, and what of it to transfer. */
export interface TaskKind<T, R> {
  run(task: T, progress: (bytes: number) => void): Promise<R>;
  /** Buffers of the task to transfer rather than copy (its ReadableStream fields always are). */
  transfer?(task: T): Transferable[];
}

/** The kinds of task a pool runs: each kind's input (an object of plain data and streams) and result. */
export type TaskCatalogue = Record<string, { task: object; result: unknown }>;

/** Implementations of every kind of a catalogue. */
export type TaskKinds<C extends TaskCatalogue> = { [K in keyof C]: TaskKind<C[K]["task"], C[K]["result"]> };

/** A task as posted to a worker. */
interface TaskMessage {
  id: number;
  kind: string;
  context: unknown;
  task: object;
}

/** What a worker posts back. */
type WorkerReply =
  | { id: number; type: "progress"; bytes: number }
  | { id: number; type: "done"; result: unknown }
  | { id: number; type: "error"; error: SerializedError };

/** The part of a worker's global scope {@link serveTasks} uses. */
export interface WorkerScope {
  onmessage: ((e: MessageEvent) => unknown) | null;
  postMessage(message: unknown): void;
}

/**
 * The worker side: answers a {@link WorkerPool}'s messages on `scope`. `kinds`
 * builds the implementations for a message's context (cache them: it is called
 * for every task).
 */
export function serveTasks<C extends TaskCatalogue>(
  scope: WorkerScope,
  kinds: (context: unknown) => Promise<TaskKinds<C>>,
): void {
  scope.onmessage = async (e: MessageEvent<TaskMessage>) => {
    const { id, kind, context, task } = e.data;
    const post = (reply: WorkerReply) => scope.postMessage(reply);
    try {
      const impl = (await kinds(context))[kind] as TaskKind<object, unknown> | undefined;
      if (!impl) throw new Error(`unknown task kind ${JSON.stringify(kind)}`);
      const result = await impl.run(task, (bytes) => post({ id, type: "progress", bytes }));
      post({ id, type: "done", result });
    } catch (err) {
      post({ id, type: "error", error: serializeError(err) });
    }
  };
}

/** How a {@link WorkerPool} runs tasks. */
export interface PoolOptions<C extends TaskCatalogue> {
  /** The worker module (it calls {@link serveTasks} with the same catalogue). */
  worker: URL;
  /** The kinds' implementations, for tasks run on the calling thread. */
  kinds: TaskKinds<C>;
  /** Sent with every task to workers: what they need to build their kinds (plain data). */
  context: unknown;
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

/** The calling thread, as a place to run a task. */
const INLINE = "inline";
type Slot = Worker | typeof INLINE;

interface Pending {
  resolve(result: unknown): void;
  reject(err: Error): void;
  progress(bytes: number): void;
}

/** Runs tasks of the catalogue `C`, up to `size` at once. */
export class WorkerPool<C extends TaskCatalogue> {
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
  /** Tasks in flight that read input streams (until each settles), with those inputs. */
  #streaming = new Map<Promise<void>, TaskInputs>();
  readonly #kinds: TaskKinds<C>;
  readonly #context: unknown;

  constructor(size: number, options: PoolOptions<C>) {
    this.#size = Math.max(1, size);
    this.#inlineFree = !options.workersOnly && (this.#size === 1 || options.useCallingThread !== false);
    this.#maxWorkers = this.#inlineFree ? this.#size - 1 : this.#size;
    this.#kinds = options.kinds;
    this.#context = options.context;
    this.#startWorker = options.startWorker ?? (() => new Worker(options.worker, { type: "module", name: "worker" }));
  }

  /** True when every task runs on the calling thread. */
  get inline(): boolean {
    return this.#maxWorkers === 0;
  }

  /**
   * Runs a task of `kind`. `make` builds it once a slot is free, so that work it
   * starts (a download, a file read) begins only when it can be consumed.
   */
  async run<K extends keyof C & string>(
    kind: K,
    make: () => Promise<C[K]["task"]>,
    progress: (bytes: number) => void = () => {},
  ): Promise<C[K]["result"]> {
    const slot = await this.#acquire();
    let inputs: TaskInputs | undefined;
    let done: () => void = () => {};
    try {
      if (this.#closed) throw new Error("worker pool closed");
      const task = await make();
      if (this.#closed && slot !== INLINE) { // an inline task made already runs: it is on this thread
        cancelStreams(task);
        throw new Error("worker pool closed");
      }
      inputs = wrapInputs(task);
      if (inputs.streams > 0) {
        const settled = new Promise<void>((resolve) => (done = resolve));
        this.#streaming.set(settled, inputs);
      }
      if (slot === INLINE) return await this.#kinds[kind].run(task, progress);
      try {
        return await this.#send(slot, kind, task, progress) as C[K]["result"];
      } catch (e) {
        throw inputs.error() ?? e; // the class a worker's error lost in cloning
      }
    } finally {
      done();
      for (const [settled, i] of this.#streaming) if (i === inputs) this.#streaming.delete(settled);
      this.#release(slot);
    }
  }

  /**
   * Stops the pool after a failure, without cutting a task off in the middle of
   * committing what it made: the input streams of the tasks in flight are failed
   * with `reason`, so each stops at its next read and cleans up after itself, or
   * finishes its commit if it has read everything; the pool waits for them
   * (tasks without input streams are not waited for), then closes.
   */
  async stop(reason: unknown): Promise<void> {
    this.#closed = true;
    for (const w of this.#waiting) w.reject(new Error("worker pool closed"));
    this.#waiting = [];
    for (const inputs of this.#streaming.values()) inputs.fail(reason);
    await Promise.all(this.#streaming.keys());
    this.close();
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
      if (msg.type === "done") p.resolve(msg.result);
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
        p.reject(new Error(`worker failed: ${e.message}`));
      }
    };
    this.#workers.push(worker);
    return worker;
  }

  #send(worker: Worker, kind: keyof C & string, task: object, progress: (bytes: number) => void): Promise<unknown> {
    const id = this.#nextId++;
    const failure = this.#failed.get(worker);
    if (failure !== undefined) {
      cancelStreams(task);
      return Promise.reject(new Error(`worker failed: ${failure}`));
    }
    return new Promise<unknown>((resolve, reject) => {
      this.#pending.set(id, { resolve, reject, progress });
      this.#running.set(worker, id);
      const msg: TaskMessage = { id, kind, context: this.#context, task };
      const transfer = [...streamsOf(task), ...(this.#kinds[kind].transfer?.(task) ?? [])];
      worker.postMessage(msg, transfer as Transferable[]);
    });
  }
}

/** The ReadableStream fields of a task (transferred to the worker, not copied). */
function streamsOf(task: object): ReadableStream[] {
  return Object.values(task).filter((v): v is ReadableStream => v instanceof ReadableStream);
}

/** Cancels a task's input streams (it will not run). */
function cancelStreams(task: object): void {
  for (const s of streamsOf(task)) s.cancel().catch(() => {});
}

/** The input streams of a task in flight, as {@link wrapInputs} wrapped them. */
interface TaskInputs {
  /** How many input streams the task has. */
  streams: number;
  /** The error an input's source failed with, if one did. */
  error(): unknown;
  /** Fails every input with `reason` (the task stops at its next read). */
  fail(reason: unknown): void;
}

/**
 * Wraps each input stream of `task`, for two reasons. Errors cloned across a
 * Worker boundary lose their class (a TransportError from a download arrives as a
 * plain Error, and the worker then reports it as corrupt data): the error the
 * source failed with is kept here, and the pool reports that one when the task
 * fails. And {@link WorkerPool.stop} can fail the inputs, wherever the task runs.
 */
function wrapInputs(task: object): TaskInputs {
  let error: unknown;
  let streams = 0;
  const controllers: ReadableStreamDefaultController<Uint8Array>[] = [];
  const readers: ReadableStreamDefaultReader<Uint8Array>[] = [];
  const fields = task as Record<string, unknown>;
  for (const [key, value] of Object.entries(fields)) {
    if (!(value instanceof ReadableStream)) continue;
    streams++;
    const reader = (value as ReadableStream<Uint8Array>).getReader();
    readers.push(reader);
    fields[key] = new ReadableStream<Uint8Array>({
      start(controller) {
        controllers.push(controller);
      },
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
  return {
    streams,
    error: () => error,
    fail(reason) {
      for (const c of controllers) {
        try {
          c.error(reason);
        } catch { /* closed already */ }
      }
      for (const r of readers) r.cancel(reason).catch(() => {});
    },
  };
}
