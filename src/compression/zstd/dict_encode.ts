/**
 * A zstd encoder for one frame made against a raw-content dictionary
 * (dictionary ID 0, the kind `zstd --patch-from=OLD` writes and tar-diff
 * version 2's ZstdDict op carries): the new file is matched against the old one
 * and against itself, and written as one frame that `zstd -d --patch-from=OLD`,
 * oci-delta's readers and `dict.ts` decode.
 *
 * Why our own: Deno's node:zlib zstd takes no dictionary, and the npm builds of
 * libzstd either have no dictionary or prefix compression, a fixed heap too
 * small for the files it is meant for, or no way to set the window; what a
 * patch needs is small: LZ matching over the dictionary and the frame, and the
 * sequences written with zstd's predefined code tables.
 *
 * The matcher is zstd's "double fast" strategy: two hash tables (8-byte and
 * 4-byte prefixes) over the dictionary (filled before the first byte, at a
 * stride the level sets) and over the new file as it goes, a check of the last
 * offset first (files that shifted repeat one offset for long stretches), and
 * every match extended backwards over the literals before it. Literals are
 * stored raw: the tar-diff's own zstd stream compresses them. Blocks that would
 * not shrink are stored raw. The frame names its content size, its window, and
 * a content checksum.
 *
 * Blocks are written by `block_encode.ts`.
 *
 * Memory: the caller's buffer (old and new file, back to back), two hash
 * tables of at most 64 MiB each, one block's work buffers, and the frame.
 *
 * @module
 */
import { Xxh64 } from "./xxh64.ts";
import { Output, writeBlock } from "./block_encode.ts";

/** Largest window log written (and the reference readers' limit). */
export const MAX_PATCH_WINDOW_LOG = 29;
/** Smallest window log zstd allows. */
const MIN_WINDOW_LOG = 10;
const MAX_BLOCK = 128 << 10;
/** Offsets must have a code the predefined offset table holds (0 to 28). */
const MAX_OFFSET = (1 << 29) - 4;
const PRIME32 = 0x9e3779b1 | 0;
const PRIME32B = 0x85ebca77 | 0;

/** How to encode. */
export interface ZstdPatchOptions {
  /** Effort, 1 (fastest) to 19 (smallest); default 3. */
  level?: number;
  /**
   * The frame's window log (10 to 29): how far back a match may reach, and what
   * a reader must hold at most. Default: the smallest that holds both files.
   */
  windowLog?: number;
}

/**
 * The default window log for files of these sizes: the smallest window that
 * holds both, so every byte of the dictionary stays in reach to the frame's end
 * (at most 29). It costs readers nothing: they hold at most the content size.
 */
export function patchWindowLog(dictionarySize: number, targetSize: number): number {
  const size = Math.max(dictionarySize + targetSize, 1);
  return Math.min(MAX_PATCH_WINDOW_LOG, Math.max(MIN_WINDOW_LOG, Math.ceil(Math.log2(size))));
}

/** Matcher settings of a level. */
interface Params {
  /** Dictionary positions skipped between two insertions. */
  dictStep: number;
  /** How fast the search skips ahead through bytes that do not match (a shift: larger is more patient). */
  patience: number;
  /** Shortest match taken from the 4-byte table. */
  minMatch: number;
  hashLog: number;
}

function params(level: number, positions: number): Params {
  const size = Math.ceil(Math.log2(Math.max(positions, 1 << 12)));
  // Measured on the corpus's deno binary (95 MB, one release apart) and typescript.js (9 MB): short
  // matches far back cost more bits than the literals they replace, and a sparser dictionary
  // loses little (backward extension recovers a match's start).
  const [dictStep, patience, minMatch] = level <= 2
    ? [8, 4, 8]
    : level <= 5
    ? [4, 5, 8]
    : level <= 9
    ? [2, 6, 7]
    : [1, 7, 6];
  return { dictStep, patience, minMatch, hashLog: Math.min(level >= 10 ? 24 : 23, Math.max(12, size)) };
}

/**
 * Encodes the new file `history[dictionarySize..]` as one zstd frame against
 * the raw-content dictionary `history[0, dictionarySize)` (the old file: the two
 * are given back to back, so matches run from one into the other without a copy).
 */
export function zstdPatchJoined(
  history: Uint8Array,
  dictionarySize: number,
  options: ZstdPatchOptions = {},
): Uint8Array {
  const level = Math.min(19, Math.max(1, options.level ?? 3));
  const dict = dictionarySize;
  const end = history.length;
  const target = end - dict;
  const windowLog = options.windowLog ?? patchWindowLog(dict, target);
  if (!Number.isInteger(windowLog) || windowLog < MIN_WINDOW_LOG || windowLog > MAX_PATCH_WINDOW_LOG) {
    throw new RangeError(`zstd window log must be from ${MIN_WINDOW_LOG} to ${MAX_PATCH_WINDOW_LOG}, got ${windowLog}`);
  }
  const window = 2 ** windowLog;
  const blockSize = Math.min(MAX_BLOCK, window);
  const p = params(level, dict + target);
  const out = new Output((target >> 2) + 64);

  // Frame header: magic, descriptor (4-byte content size, checksum), window descriptor, content size.
  out.room(14);
  out.bytes.set([0x28, 0xb5, 0x2f, 0xfd, 0x84, (windowLog - MIN_WINDOW_LOG) << 3], 0);
  new DataView(out.bytes.buffer).setUint32(6, target, true);
  out.length = 10;

  const view = new DataView(history.buffer, history.byteOffset, history.byteLength);
  const read32 = (_: Uint8Array, i: number) => view.getInt32(i, true);
  const hashShift = 32 - p.hashLog;
  const long = new Int32Array(1 << p.hashLog).fill(-1);
  const short = new Int32Array(1 << p.hashLog).fill(-1);
  const hash8 = (i: number) =>
    (Math.imul(read32(history, i), PRIME32) ^ Math.imul(read32(history, i + 4), PRIME32B)) >>> hashShift;
  const hash4 = (i: number) => Math.imul(read32(history, i), PRIME32) >>> hashShift;
  for (let i = 0; i + 8 <= dict; i += p.dictStep) {
    long[hash8(i)] = i;
    short[hash4(i)] = i;
  }

  // One block's sequences and literals.
  const maxSeq = (blockSize >> 2) + 1;
  const litLen = new Int32Array(maxSeq);
  const matchLen = new Int32Array(maxSeq);
  const offBase = new Int32Array(maxSeq);
  const lits = new Uint8Array(blockSize);
  const scratch = new Uint8Array(blockSize + 16 * maxSeq + 64);
  let rep1 = 1, rep2 = 4, rep3 = 8;

  /**
   * How far back a match starting at `v` may reach: the window, over the
   * dictionary and the frame together (as libzstd's readers hold a prefix; the
   * format would allow the whole dictionary while the frame is within its window).
   */
  const reach = (v: number) => Math.min(v, window, MAX_OFFSET);

  for (let start = dict; start < end || start === dict; start += blockSize) {
    const blockEnd = Math.min(end, start + blockSize);
    let nSeq = 0, nLits = 0;
    let anchor = start, ip = start;
    // Every candidate's first 9 bytes lie in the block (matches end inside it).
    const limit = blockEnd - 9;
    const reps = [rep1, rep2, rep3];
    const emit = (at: number, from: number, length: number) => {
      const literals = at - anchor;
      if (literals < 32) { for (let k = 0; k < literals; k++) lits[nLits + k] = history[anchor + k]; }
      else lits.set(history.subarray(anchor, at), nLits);
      nLits += literals;
      const offset = at - from;
      let code: number;
      if (literals > 0 && offset === rep1) {
        code = 1;
      } else {
        code = offset + 3;
        rep3 = rep2;
        rep2 = rep1;
        rep1 = offset;
      }
      litLen[nSeq] = literals;
      matchLen[nSeq] = length;
      offBase[nSeq++] = code;
      ip = anchor = at + length;
      if (at + 10 <= end) {
        long[hash8(at + 2)] = at + 2;
        short[hash4(at + 2)] = at + 2;
      }
      if (ip - 2 + 8 <= end && ip - 2 > at + 2) long[hash8(ip - 2)] = ip - 2;
      if (ip - 1 + 4 <= end && ip - 1 > at + 2) short[hash4(ip - 1)] = ip - 1;
    };
    const extend = (a: number, b: number) => {
      let n = 0;
      while (a + n < blockEnd && history[a + n] === history[b + n]) n++;
      return n;
    };
    while (ip < limit) {
      // The last offset, one byte on (so that the literal run is not empty and the repeat code applies).
      const r = ip + 1;
      if (rep1 <= reach(r) && read32(history, r) === read32(history, r - rep1)) {
        emit(r, r - rep1, 4 + extend(r + 4, r + 4 - rep1));
        continue;
      }
      const h8 = hash8(ip), h4 = hash4(ip);
      const c8 = long[h8], c4 = short[h4];
      long[h8] = ip;
      short[h4] = ip;
      const most = reach(ip);
      let at = ip, from = -1, length = 0;
      if (
        c8 < ip && ip - c8 <= most && read32(history, c8) === read32(history, ip) &&
        read32(history, c8 + 4) === read32(history, ip + 4)
      ) {
        from = c8;
        length = 8 + extend(ip + 8, c8 + 8);
      } else if (c4 < ip && ip - c4 <= most && read32(history, c4) === read32(history, ip)) {
        // A short match: a long one one byte on is better.
        const n = ip + 1, h = hash8(n), c = long[h];
        long[h] = n;
        if (
          c < n && n - c <= reach(n) && read32(history, c) === read32(history, n) &&
          read32(history, c + 4) === read32(history, n + 4)
        ) {
          (at = n), (from = c), (length = 8 + extend(n + 8, c + 8));
        } else {
          length = 4 + extend(ip + 4, c4 + 4);
          if (length >= p.minMatch) from = c4;
        }
      }
      if (from < 0) {
        ip += ((ip - anchor) >> p.patience) + 1;
        continue;
      }
      while (at > anchor && from > 0 && history[at - 1] === history[from - 1]) (at--, from--, length++);
      emit(at, from, length);
    }
    lits.set(history.subarray(anchor, blockEnd), nLits);
    nLits += blockEnd - anchor;
    const block = { litLen, matchLen, offBase, nSeq, lits, nLits };
    // A block stored raw carries no sequences: the reader's repeat offsets stay as they were.
    if (!writeBlock(out, history, start, blockEnd, blockEnd === end, block, scratch)) [rep1, rep2, rep3] = reps;
    if (blockEnd === end) break;
  }

  const hash = new Xxh64();
  hash.update(history, dict, end);
  out.room(4);
  new DataView(out.bytes.buffer).setUint32(out.length, hash.low32(), true);
  out.length += 4;
  return out.bytes.slice(0, out.length);
}

/** Encodes `target` as one zstd frame against the raw-content dictionary `dictionary` (copies both into one buffer). */
export function zstdPatch(dictionary: Uint8Array, target: Uint8Array, options: ZstdPatchOptions = {}): Uint8Array {
  const history = new Uint8Array(dictionary.length + target.length);
  history.set(dictionary);
  history.set(target, dictionary.length);
  return zstdPatchJoined(history, dictionary.length, options);
}
