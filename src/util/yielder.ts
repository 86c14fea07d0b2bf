/**
 * Keeping the event loop turning during long work on the main thread.
 *
 * An async loop whose awaits all settle at once (already-resolved promises,
 * synchronous I/O, a decoder that always has output) runs on microtasks only:
 * timers, I/O completions and signal handlers wait until it ends, so SIGINT or
 * SIGTERM would go unanswered for as long as the work takes. Such loops call a
 * {@link Yielder} once per unit of work; every `intervalMs` it hands the thread
 * to the event loop for one macrotask.
 *
 * @module
 */

/** Default longest stretch without a turn of the event loop, in milliseconds. */
export const YIELD_INTERVAL_MS = 50;

/** How a {@link Yielder} paces itself. */
export interface YielderOptions {
  /** Longest stretch without a turn of the event loop (default {@link YIELD_INTERVAL_MS}). */
  intervalMs?: number;
  /**
   * Read the clock only every `every` calls (default 1). Reading it costs a few
   * hundred nanoseconds: loops over small items (tar entries, tar-diff ops) pass
   * a few hundred here, loops over chunks of data keep 1.
   */
  every?: number;
}

/** Yields to the event loop when `intervalMs` passed since it last did. One per loop; cheap to call per item. */
export class Yielder {
  readonly #intervalMs: number;
  readonly #every: number;
  #countdown: number;
  #last = performance.now();

  constructor(options: YielderOptions = {}) {
    this.#intervalMs = options.intervalMs ?? YIELD_INTERVAL_MS;
    this.#every = Math.max(1, options.every ?? 1);
    this.#countdown = this.#every;
  }

  /**
   * Nothing (undefined) while the last yield is recent; else a promise that
   * resolves after a macrotask (`setTimeout(0)`), once the event loop has run
   * what was waiting. Use as `await yielder.yieldIfDue()`.
   */
  yieldIfDue(): Promise<void> | undefined {
    if (--this.#countdown > 0) return undefined;
    this.#countdown = this.#every;
    if (performance.now() - this.#last < this.#intervalMs) return undefined;
    return this.#pause();
  }

  /**
   * The turn of the event loop, in a method of its own: a closure in
   * {@link yieldIfDue} would make V8 allocate a context on every call, taken
   * or not (a tar-diff's million ops made 130 MB of garbage so).
   */
  #pause(): Promise<void> {
    return new Promise((resolve) =>
      setTimeout(() => {
        this.#last = performance.now();
        resolve();
      }, 0)
    );
  }
}
