/**
 * Reusable buffers for the tar-diff encoder, which diffs one file pair after
 * another: the pair's bytes, suffix array and block ranks.
 *
 * Buffers up to {@link RETAIN} are kept per slot for the next pair; larger ones
 * are used once. Whatever is not kept is freed as soon as its pair is done
 * ({@link PairBuffers.spent}), and everything when the layer is
 * ({@link PairBuffers.release}), by detaching it (`ArrayBuffer.transfer(0)`): its
 * memory goes back at once, rather than at a garbage collection that may not come
 * while a worker idles (one that had diffed typescript.js sat on 90 MB of them).
 *
 * @module
 */

/** Buffers up to this size are kept for the next file pair; larger ones are used once. */
export const RETAIN = 32 << 20;

type Typed = Uint8Array | Int32Array;

/** Frees a buffer's memory now; every view of it becomes empty. */
function free(buf: Typed): void {
  (buf.buffer as ArrayBuffer).transfer(0);
}

/** Buffers by slot name, reused from one file pair to the next. */
export class PairBuffers {
  #kept = new Map<string, Typed>();
  #once: Typed[] = [];

  /** `n` bytes for `slot` (contents undefined). */
  bytes(slot: string, n: number): Uint8Array {
    return this.#get(slot, n, 1, (k) => new Uint8Array(k)) as Uint8Array;
  }

  /** `n` 32-bit integers for `slot` (contents undefined). */
  ints(slot: string, n: number): Int32Array {
    return this.#get(`${slot}/ints`, n, 4, (k) => new Int32Array(k)) as Int32Array;
  }

  /** Frees the buffers used once since the last call (views of them become empty). */
  spent(): void {
    for (const b of this.#once) free(b);
    this.#once = [];
  }

  /** Frees every buffer. */
  release(): void {
    this.spent();
    for (const b of this.#kept.values()) free(b);
    this.#kept.clear();
  }

  #get(slot: string, n: number, width: number, make: (n: number) => Typed): Typed {
    const kept = this.#kept.get(slot);
    if (kept && kept.length >= n) return kept.subarray(0, n);
    if (kept) {
      free(kept); // too small: replaced
      this.#kept.delete(slot);
    }
    const buf = make(n);
    if (n * width <= RETAIN) this.#kept.set(slot, buf);
    else this.#once.push(buf);
    return buf;
  }
}
