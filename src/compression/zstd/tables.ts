/**
 * The code tables of zstd's sequences section (RFC 8878 3.1.1.3.2): what each
 * literal length, match length and offset code stands for, the predefined FSE
 * decoding tables (built once at load and never changed), and
 * {@link SequenceTables}, which sets up the three tables a compressed block
 * decodes its sequences with, from the block's compression modes.
 *
 * @module
 */
import { FseTable, readDistribution, ZstdCorruption } from "./entropy.ts";

// What the literal length, match length and offset codes stand for (RFC 8878 3.1.1.3.2.1).
// deno-fmt-ignore
/** Baseline of each literal length code. */
export const LL_BASE: readonly number[] = [
  0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
  16, 18, 20, 22, 24, 28, 32, 40, 48, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536,
];
// deno-fmt-ignore
/** Extra bits read after each literal length code. */
export const LL_BITS: readonly number[] = [
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
  1, 1, 1, 1, 2, 2, 3, 3, 4, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
];
// deno-fmt-ignore
/** Baseline of each match length code. */
export const ML_BASE: readonly number[] = [
  3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34,
  35, 37, 39, 41, 43, 47, 51, 59, 67, 83, 99, 131, 259, 515, 1027, 2051, 4099, 8195, 16387, 32771, 65539,
];
// deno-fmt-ignore
/** Extra bits read after each match length code. */
export const ML_BITS: readonly number[] = [
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
  1, 1, 1, 1, 2, 2, 3, 3, 4, 4, 5, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
];
/** Extra bits read after each offset code: the code itself. */
const OF_BITS: readonly number[] = Array.from({ length: 32 }, (_, code) => code);
/** Baseline of each offset code: 2 to the code. */
const OF_BASE: readonly number[] = OF_BITS.map((code) => 2 ** code);
/** Largest literal length, match length and offset code. */
const LL_MAX = 35, ML_MAX = 52, OF_MAX = 31;
/** Largest accuracy log of a literal length, match length and offset table. */
const LL_LOG = 9, ML_LOG = 9, OF_LOG = 8;

/** A predefined sequence-code table (RFC 8878 3.1.1.3.2.2), built once and never changed. */
function predefined(dist: number[], log: number, base: readonly number[], bits: readonly number[]): FseTable {
  return new FseTable(log).build(Int16Array.from(dist), dist.length, log).withValues(base, bits);
}
// deno-fmt-ignore
/** The predefined literal length distribution (accuracy log 6), which encoders use too. */
export const LL_PREDEFINED: readonly number[] = [
  4, 3, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 2, 3, 2, 1, 1, 1, 1, 1, -1, -1, -1, -1,
];
// deno-fmt-ignore
/** The predefined match length distribution (accuracy log 6). */
export const ML_PREDEFINED: readonly number[] = [
  1, 4, 3, 2, 2, 2, 2, 2, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
  1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, -1, -1, -1, -1, -1, -1, -1,
];
// deno-fmt-ignore
/** The predefined offset code distribution (accuracy log 5): codes 0 to 28. */
export const OF_PREDEFINED: readonly number[] = [
  1, 1, 1, 1, 1, 1, 2, 2, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, -1, -1, -1, -1, -1,
];
/** The predefined literal length table. */
const LL_DEFAULT: FseTable = predefined([...LL_PREDEFINED], 6, LL_BASE, LL_BITS);
/** The predefined match length table. */
const ML_DEFAULT: FseTable = predefined([...ML_PREDEFINED], 6, ML_BASE, ML_BITS);
/** The predefined offset table. */
const OF_DEFAULT: FseTable = predefined([...OF_PREDEFINED], 5, OF_BASE, OF_BITS);

/**
 * The literal length, offset and match length tables of the current block, and
 * the tables a block's own descriptions are built in. A block may repeat the
 * tables of the one before, so one instance serves a whole frame.
 */
export class SequenceTables {
  #norm = new Int16Array(64);
  #llOwn = new FseTable(LL_LOG);
  #ofOwn = new FseTable(OF_LOG);
  #mlOwn = new FseTable(ML_LOG);
  #ll: FseTable | null = null;
  #of: FseTable | null = null;
  #ml: FseTable | null = null;

  /** The literal length table, once a block has set it up. */
  get ll(): FseTable | null {
    return this.#ll;
  }

  /** The offset table, once a block has set it up. */
  get of(): FseTable | null {
    return this.#of;
  }

  /** The match length table, once a block has set it up. */
  get ml(): FseTable | null {
    return this.#ml;
  }

  /**
   * Sets up the table of one sequence code kind (0 literal lengths, 1 offsets,
   * 2 match lengths) for compression `mode`, reading its description (if any)
   * at `buf[pos, end)`; returns the position after it.
   */
  select(kind: number, mode: number, buf: Uint8Array, pos: number, end: number): number {
    const own = kind === 0 ? this.#llOwn : kind === 1 ? this.#ofOwn : this.#mlOwn;
    const max = kind === 0 ? LL_MAX : kind === 1 ? OF_MAX : ML_MAX;
    const base = kind === 0 ? LL_BASE : kind === 1 ? OF_BASE : ML_BASE;
    const bits = kind === 0 ? LL_BITS : kind === 1 ? OF_BITS : ML_BITS;
    let table: FseTable;
    switch (mode) {
      case 0:
        table = kind === 0 ? LL_DEFAULT : kind === 1 ? OF_DEFAULT : ML_DEFAULT;
        break;
      case 1: {
        if (pos >= end) throw new ZstdCorruption("RLE sequence code runs past the block");
        const symbol = buf[pos++];
        if (symbol > max) throw new ZstdCorruption(`sequence code ${symbol} is out of range`);
        table = own.rle(symbol).withValues(base, bits);
        break;
      }
      case 2: {
        const log = kind === 1 ? OF_LOG : kind === 0 ? LL_LOG : ML_LOG;
        const [accuracyLog, symbols, next] = readDistribution(buf, pos, end, max, log, this.#norm);
        if (next > end) throw new ZstdCorruption("FSE table description runs past the block");
        table = own.build(this.#norm, symbols, accuracyLog).withValues(base, bits);
        pos = next;
        break;
      }
      default: {
        const previous = kind === 0 ? this.#ll : kind === 1 ? this.#of : this.#ml;
        if (previous === null) throw new ZstdCorruption("repeat mode without a previous sequence table");
        table = previous;
      }
    }
    if (kind === 0) this.#ll = table;
    else if (kind === 1) this.#of = table;
    else this.#ml = table;
    return pos;
  }
}
