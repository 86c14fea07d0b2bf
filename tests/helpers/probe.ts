/**
 * Test helper: runs parsers on hostile input in a Worker, under a time limit. A
 * parser that loops (even synchronously, which no timer in its own thread could
 * interrupt) is stopped by terminating the worker, so the test fails instead of
 * hanging. Used by the strict-parsing tests and the fuzz test.
 */

/** Work for the probe worker; see `probe_worker.ts`. */
export type ProbeTask =
  /** Splits a tar with TarSplitter, `chunk` bytes at a time. */
  | { kind: "split"; tar: Uint8Array; chunk?: number }
  /** Indexes an oci-archive file with ArchiveFiles.open and reads every member. */
  | { kind: "index"; path: string }
  /** Reads a layer record file with readRecord, parsing its header groups. */
  | { kind: "record"; path: string }
  /** Builds the fuzz targets' valid inputs under `dir` (call once before `fuzz` tasks). */
  | { kind: "fuzz-setup"; dir: string }
  /** Runs case `index` of fuzz target `target` for run seed `seed`. */
  | { kind: "fuzz"; target: string; seed: number; index: number };

/**
 * How a task ended: a value, or an error (`typed` when it is a DeltashipError);
 * `memory` is the worker's heap plus external buffers afterwards, in bytes.
 */
export type ProbeResult =
  | { ok: true; value: unknown; memory: number }
  | { ok: false; typed: boolean; name: string; message: string; stack?: string; memory: number };

/** The task did not finish in time; the worker has been terminated. */
export class ProbeTimeout extends Error {
  override name = "ProbeTimeout";
}

/** A worker that runs {@link ProbeTask}s one at a time. */
export class Prober {
  #worker: Worker | undefined;
  #waiting: ((r: ProbeResult | Error) => void) | undefined;

  #start(): Worker {
    const w = new Worker(new URL("./probe_worker.ts", import.meta.url), { type: "module" });
    w.onmessage = (e: MessageEvent<ProbeResult>) => this.#settle(e.data);
    w.onerror = (e: ErrorEvent) => {
      e.preventDefault();
      this.#settle(new Error(`probe worker crashed: ${e.message}`));
    };
    return w;
  }

  #settle(r: ProbeResult | Error): void {
    const waiting = this.#waiting;
    this.#waiting = undefined;
    waiting?.(r);
  }

  /** Runs `task`; throws {@link ProbeTimeout} when it takes longer than `ms`. */
  async run(task: ProbeTask, ms: number): Promise<ProbeResult> {
    if (this.#waiting) throw new Error("Prober.run while another task runs");
    this.#worker ??= this.#start();
    const worker = this.#worker;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const done = new Promise<ProbeResult | Error>((resolve) => {
      this.#waiting = resolve;
      timer = setTimeout(() => {
        this.close();
        resolve(new ProbeTimeout(`${task.kind} did not finish within ${ms} ms`));
      }, ms);
    });
    worker.postMessage(task);
    const r = await done;
    clearTimeout(timer);
    if (r instanceof Error) {
      this.close();
      throw r;
    }
    return r;
  }

  /** Stops the worker (a later `run` starts a new one, which needs its setup again). */
  close(): void {
    this.#worker?.terminate();
    this.#worker = undefined;
    this.#waiting = undefined;
  }
}
