/**
 * The bsdiff-style matcher (after Colin Percival's bsdiff): finds, for a target
 * file, regions that approximately match the source file (to be sent as the
 * bytewise difference, which is mostly zeros) and regions that are new (sent as
 * they are). Exact matches are found through the source's suffix array; each
 * is extended forwards and backwards while at least half the bytes still agree,
 * which is what makes recompiled binaries (shifted addresses, patched offsets)
 * cheap to send.
 *
 * @module
 */

/**
 * The matcher's plan, in target order: entries of four numbers `(targetPos,
 * sourcePos, add, extra)`: `add` bytes of the target from `targetPos` correspond
 * to the source from `sourcePos` (send the difference), then `extra` target bytes
 * follow that the source does not explain. The entries cover the whole target.
 */
export class Plan {
  entries = new Int32Array(256);
  length = 0;

  /** Appends one entry. */
  push(targetPos: number, sourcePos: number, add: number, extra: number): void {
    if (this.length + 4 > this.entries.length) {
      const bigger = new Int32Array(this.entries.length * 2);
      bigger.set(this.entries);
      this.entries = bigger;
    }
    const e = this.entries;
    e[this.length++] = targetPos;
    e[this.length++] = sourcePos;
    e[this.length++] = add;
    e[this.length++] = extra;
  }
}

/** Smallest gain (in matching bytes) for which a new alignment replaces the current one. */
const MIN_GAIN = 8;

/** Window over which a mostly matching alignment is kept without searching. */
const SPARSE_WINDOW = 64;

/** Widest step between searches in a region where they keep failing. */
const MAX_STRIDE = 16;

/** Longest backward extension of a match. */
const MAX_BACKWARD = 1 << 16;

/** Longest match the search measures; longer ones are used in pieces. */
const MAX_MATCH = 1 << 22;

/** Sources with at least this many sorted positions get a three-byte prefix index. */
const DEEP_INDEX_MIN = 1 << 22;

/**
 * A source file prepared for matching: its bytes, (possibly sparse) suffix array,
 * and a prefix index that narrows each search to the suffixes sharing the
 * target's first two bytes (three for large sources, where it saves about eight
 * binary-search steps per search for 64 MiB of table).
 */
export class MatchIndex {
  /** Bytes of prefix the index resolves (2 or 3). */
  readonly depth: number;
  /** `buckets[k]` is the first suffix-array slot whose suffix starts with the `depth` bytes `k`. */
  readonly buckets: Int32Array;
  /** Where the last {@link longestMatch} found its match (a field, so the hot loop allocates nothing). */
  foundPos = 0;

  /** `depth` is chosen by size unless given (tests use both). */
  constructor(readonly source: Uint8Array, readonly sa: Int32Array, readonly step = 1, depth?: number) {
    const n = source.length;
    depth ??= sa.length >= DEEP_INDEX_MIN ? 3 : 2;
    const keys = 1 << (8 * depth);
    const counts = new Int32Array(keys + 1);
    if (depth === 2) {
      for (let i = 0; i + 1 < n; i += step) counts[(source[i] << 8) | source[i + 1]]++;
    } else {
      for (let i = 0; i + 2 < n; i += step) counts[(source[i] << 16) | (source[i + 1] << 8) | source[i + 2]]++;
    }
    // Suffixes shorter than `depth` (at most two) sort first among those they are
    // a prefix of: before every suffix whose first `depth` bytes are theirs padded with zeros.
    const short: number[] = [];
    for (let len = 1; len < depth; len++) {
      const at = n - len;
      if (at < 0 || at % step !== 0) continue;
      let key = 0;
      for (let j = 0; j < depth; j++) key = (key << 8) | (j < len ? source[at + j] : 0);
      short.push(key);
    }
    const s0 = short[0] ?? -1;
    const s1 = short[1] ?? -1;
    let sum = 0;
    for (let key = 0; key < keys; key++) {
      const c = counts[key];
      if (key === s0) sum++;
      if (key === s1) sum++;
      counts[key] = sum;
      sum += c;
    }
    counts[keys] = sum;
    this.depth = depth;
    this.buckets = counts;
  }
}

/**
 * The longest prefix of `target[at..]` that occurs in the source; sets
 * `index.foundPos` and returns its length.
 */
function longestMatch(index: MatchIndex, target: Uint8Array, at: number): number {
  const { source, sa, buckets, depth } = index;
  const n = source.length;
  const rest = Math.min(target.length - at, MAX_MATCH);
  if (rest < depth) {
    index.foundPos = 0;
    return 0;
  }
  const key = depth === 2
    ? (target[at] << 8) | target[at + 1]
    : (target[at] << 16) | (target[at + 1] << 8) | target[at + 2];
  let lo = buckets[key];
  let hi = buckets[key + 1] - 1;
  if (lo > hi) {
    index.foundPos = 0;
    return 0;
  }
  // Every suffix in [lo, hi] shares the first `depth` bytes.
  let s = sa[lo];
  let llo = depth;
  while (llo < rest && s + llo < n && source[s + llo] === target[at + llo]) llo++;
  if (lo === hi || llo === rest) {
    index.foundPos = s;
    return llo;
  }
  s = sa[hi];
  let lhi = depth;
  while (lhi < rest && s + lhi < n && source[s + lhi] === target[at + lhi]) lhi++;
  if (lhi === rest) {
    index.foundPos = s;
    return lhi;
  }
  while (hi - lo > 1) {
    const mid = (lo + hi) >>> 1;
    s = sa[mid];
    let k = llo < lhi ? llo : lhi;
    while (k < rest && s + k < n && source[s + k] === target[at + k]) k++;
    if (k === rest) {
      index.foundPos = s;
      return k;
    }
    if (s + k === n || source[s + k] < target[at + k]) {
      lo = mid;
      llo = k;
    } else {
      hi = mid;
      lhi = k;
    }
  }
  if (llo >= lhi) {
    index.foundPos = sa[lo];
    return llo;
  }
  index.foundPos = sa[hi];
  return lhi;
}

/** Plans the difference of `target` against the indexed source. */
export function planDiff(index: MatchIndex, target: Uint8Array): Plan {
  const plan = new Plan();
  const source = index.source;
  const oldSize = source.length;
  const newSize = target.length;
  let scan = 0;
  let len = 0;
  let pos = 0;
  let lastScan = 0;
  let lastPos = 0;
  let lastOffset = 0;
  let misses = 0;
  while (scan < newSize) {
    let oldScore = 0;
    scan += len;
    let scsc = scan;
    while (scan < newSize) {
      const ap = scan + lastOffset;
      if (ap < oldSize && source[ap] === target[scan]) {
        // The current alignment still matches here. Searching would mostly find
        // this same run again; a better match starting inside the run is found
        // where the run ends (and the backward extension recovers its start).
        misses = 0;
        let r = 1;
        while (scan + r < newSize && ap + r < oldSize && source[ap + r] === target[scan + r]) r++;
        for (; scsc < scan + r; scsc++) {
          if (scsc + lastOffset < oldSize && source[scsc + lastOffset] === target[scsc]) oldScore++;
        }
        if (oldScore === r) {
          len = r;
          pos = ap;
          break;
        }
        oldScore -= r;
        scan += r;
        continue;
      }
      if (ap < oldSize && scan + SPARSE_WINDOW <= newSize && ap + SPARSE_WINDOW <= oldSize) {
        // A mismatch in an alignment that still mostly matches: a match of up to
        // SPARSE_WINDOW bytes cannot gain MIN_GAIN over it, so skip the search.
        let miss = 0;
        for (let i = 0; i < SPARSE_WINDOW && miss <= MIN_GAIN; i++) if (source[ap + i] !== target[scan + i]) miss++;
        if (miss <= MIN_GAIN) {
          scan++;
          continue;
        }
      }
      len = longestMatch(index, target, scan);
      pos = index.foundPos;
      for (; scsc < scan + len; scsc++) {
        if (scsc + lastOffset < oldSize && source[scsc + lastOffset] === target[scsc]) oldScore++;
      }
      if ((len === oldScore && len !== 0) || len > oldScore + MIN_GAIN) {
        misses = 0;
        break;
      }
      // Nothing here. Where searches keep failing (new or incompressible data),
      // search less often: a long match is still found a few bytes in, and the
      // backward extension recovers its start.
      const stride = Math.min(1 + (++misses >> 5), MAX_STRIDE, newSize - scan);
      for (let i = 1; i < stride; i++) {
        const q = scan + i;
        if (q < scsc && q + lastOffset < oldSize && source[q + lastOffset] === target[q]) oldScore--;
      }
      scan += stride;
    }
    if (len === oldScore && scan < newSize) continue;

    // Extend the previous match forwards while at least half its bytes agree.
    let lenf = 0;
    {
      let s = 0;
      let best = 0;
      for (let i = 0; lastScan + i < scan && lastPos + i < oldSize;) {
        if (source[lastPos + i] === target[lastScan + i]) s++;
        i++;
        if (s * 2 - i > best * 2 - lenf) {
          best = s;
          lenf = i;
        }
      }
    }
    // Extend the new match backwards likewise, at most MAX_BACKWARD bytes: on
    // repetitive data every new match would otherwise reach back over everything
    // since the last one (quadratic time), for no gain.
    let lenb = 0;
    if (scan < newSize) {
      let s = 0;
      let best = 0;
      for (let i = 1; scan >= lastScan + i && pos >= i && i <= MAX_BACKWARD; i++) {
        if (source[pos - i] === target[scan - i]) s++;
        if (s * 2 - i > best * 2 - lenb) {
          best = s;
          lenb = i;
        }
      }
    }
    // Where the extensions overlap, split at the best point.
    if (lastScan + lenf > scan - lenb) {
      const overlap = lastScan + lenf - (scan - lenb);
      let s = 0;
      let best = 0;
      let lens = 0;
      for (let i = 0; i < overlap; i++) {
        if (target[lastScan + lenf - overlap + i] === source[lastPos + lenf - overlap + i]) s++;
        if (target[scan - lenb + i] === source[pos - lenb + i]) s--;
        if (s > best) {
          best = s;
          lens = i + 1;
        }
      }
      lenf += lens - overlap;
      lenb -= lens;
    }

    plan.push(lastScan, lastPos, lenf, scan - lenb - (lastScan + lenf));
    lastScan = scan - lenb;
    lastPos = pos - lenb;
    lastOffset = pos - scan;
  }
  return plan;
}
