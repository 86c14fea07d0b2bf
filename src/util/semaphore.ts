/**
 * A counting semaphore: at most `limit` holders at once, the rest wait in
 * arrival order. Used to bound concurrent downloads independently of how many
 * layers are processed at once.
 *
 * @module
 */

/** Gives back a permit; calling it more than once is harmless. */
export type Release = () => void;

/** At most `limit` permits out at a time. */
export class Semaphore {
  #available: number;
  #waiting: (() => void)[] = [];

  constructor(readonly limit: number) {
    if (!Number.isInteger(limit) || limit < 1) throw new RangeError(`semaphore limit must be a positive integer`);
    this.#available = limit;
  }

  /** Permits currently held. */
  get held(): number {
    return this.limit - this.#available;
  }

  /** Waits for a permit; returns the function that releases it. */
  async acquire(): Promise<Release> {
    if (this.#available > 0) this.#available--;
    else await new Promise<void>((resolve) => this.#waiting.push(resolve));
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.#waiting.shift();
      if (next) next(); // the permit passes straight to the next waiter
      else this.#available++;
    };
  }
}
