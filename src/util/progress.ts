/**
 * The progress interface the core reports to; the CLI decides how (or whether)
 * to show it.
 *
 * @module
 */

/** Receives progress of named units of work (layers, blobs). */
export interface ProgressSink {
  /**
   * Announces a unit that will start later (optional): a display lists units
   * in the order they are announced or started, so announcing a fan-out's
   * units in their natural order (layer 1/3, 2/3, 3/3) keeps them in that
   * order whatever order they start in.
   */
  queue?(id: string, label: string, total: number): void;
  /** A unit starts; `total` bytes expected (0 when unknown). */
  start(id: string, label: string, total: number): void;
  /** `bytes` more of the unit are done. */
  advance(id: string, bytes: number): void;
  /** The unit is finished; `note` says how (e.g. "skipped", "rebuilt"). */
  finish(id: string, note?: string): void;
}

/** A sink that shows nothing. */
export const silentProgress: ProgressSink = {
  start() {},
  advance() {},
  finish() {},
};

/** Called with how many more bytes (of input consumed, or output made) a task has done. */
export type OnBytes = (bytes: number) => void;
