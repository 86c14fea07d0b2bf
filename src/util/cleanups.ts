/**
 * Undo actions for work in progress (a partly written export, a half-made
 * checkout), run when the process is interrupted before the work completes.
 *
 * @module
 */

/** An undo action. */
export type Cleanup = () => void | Promise<void>;

/** A set of undo actions, run newest first by {@link Cleanups.run}. */
export class Cleanups {
  #actions = new Set<Cleanup>();

  /** Registers an action until the returned handle is disposed (the work completed or failed on its own). */
  add(action: Cleanup): Disposable {
    this.#actions.add(action);
    return { [Symbol.dispose]: () => void this.#actions.delete(action) };
  }

  /** Runs every registered action, newest first; failures are ignored (best effort). */
  async run(): Promise<void> {
    const actions = [...this.#actions].reverse();
    this.#actions.clear();
    for (const action of actions) {
      try {
        await action();
      } catch { /* best effort */ }
    }
  }
}
