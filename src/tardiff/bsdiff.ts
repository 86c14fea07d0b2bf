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

/**
 * Two-byte buckets holding more than this many sorted suffixes get a table by
 * their third byte. A 24-bit table for all keys would cost 64 MiB; on the 95 MB
 * deno binary (24 million sampled suffixes) 10,139 buckets pass this, 20 million
 * suffixes between them, for 10 MiB of tables and the same narrowing of searches.
 */
const SUBTABLE_MIN = 256;

/**
 * A source file prepared for matching: its bytes, (possibly sparse) suffix array,
 * and a prefix index that narrows each search to the suffixes sharing the
 * target's first two bytes, or its first three where that two-byte bucket is
 * large (which saves about eight binary-search steps there).
 */
export class MatchIndex {
  /** `buckets[k]` is the first suffix-array slot whose suffix starts with the two bytes `k`. */
  readonly buckets: Int32Array;
  /**
   * For a large two-byte bucket `k`, `subOf[k]` is where its third-byte table
   * starts in {@link sub}: `sub[subOf[k] + c]` is the first slot whose suffix
   * starts with `k` then byte `c` (`c` = 256: the bucket's end); -1 for others.
   */
  readonly subOf: Int32Array;
  /** The third-byte tables, 257 entries each. */
  readonly sub: Int32Array;
  /** Where the last {@link longestMatch} found its match (a field, so the hot loop allocates nothing). */
  foundPos = 0;

  /** `subtableMin` is {@link SUBTABLE_MIN} unless given (tests use 0, a table for every bucket, and Infinity, none). */
  constructor(
    readonly source: Uint8Array,
    readonly sa: Int32Array,
    readonly step = 1,
    subtableMin = SUBTABLE_MIN,
  ) {
    const n = source.length;
    const counts = new Int32Array(65537);
    for (let i = 0; i + 1 < n; i += step) counts[(source[i] << 8) | source[i + 1]]++;
    // The one-byte suffix (if sampled) sorts first among those starting with its byte.
    const short = n >= 1 && (n - 1) % step === 0 ? source[n - 1] << 8 : -1;
    const subOf = new Int32Array(65536).fill(-1);
    let tables = 0;
    let sum = 0;
    for (let key = 0; key < 65536; key++) {
      const c = counts[key];
      if (key === short) sum++;
      counts[key] = sum;
      sum += c;
      if (c > subtableMin) subOf[key] = 257 * tables++;
    }
    counts[65536] = sum;
    // Third-byte counts of the large buckets, then their starts. In a bucket, the
    // two-byte suffix (if sampled) sorts first.
    const sub = new Int32Array(257 * tables);
    for (let i = 0; i + 2 < n; i += step) {
      const at = subOf[(source[i] << 8) | source[i + 1]];
      if (at >= 0) sub[at + source[i + 2]]++;
    }
    const twoByte = n >= 2 && (n - 2) % step === 0 ? (source[n - 2] << 8) | source[n - 1] : -1;
    for (let key = 0; key < 65536; key++) {
      const at = subOf[key];
      if (at < 0) continue;
      let slot = counts[key] + (key === twoByte ? 1 : 0);
      for (let c = 0; c < 256; c++) {
        const k = sub[at + c];
        sub[at + c] = slot;
        slot += k;
      }
      sub[at + 256] = slot;
    }
    this.buckets = counts;
    this.subOf = subOf;
    this.sub = sub;
  }
}

/**
 * The longest prefix of `target[at..]` that occurs in the source; sets
 * `index.foundPos` and returns its length.
 */
function longestMatch(index: MatchIndex, target: Uint8Array, at: number): number {
  const { source, sa, buckets, subOf, sub } = index;
  const n = source.length;
  const rest = Math.min(target.length - at, MAX_MATCH);
  if (rest < 2) {
    index.foundPos = 0;
    return 0;
  }
  const key = (target[at] << 8) | target[at + 1];
  let lo: number;
  let hi: number;
  // Every suffix in [lo, hi] shares the first `known` bytes.
  let known = 2;
  const table = subOf[key];
  if (table >= 0 && rest >= 3) {
    lo = sub[table + target[at + 2]];
    hi = sub[table + target[at + 2] + 1] - 1;
    known = 3;
  } else {
    lo = buckets[key];
    hi = buckets[key + 1] - 1;
  }
  if (lo > hi) {
    index.foundPos = 0;
    return 0;
  }
  let s = sa[lo];
  let llo = known;
  while (llo < rest && s + llo < n && source[s + llo] === target[at + llo]) llo++;
  if (lo === hi || llo === rest) {
    index.foundPos = s;
    return llo;
  }
  s = sa[hi];
  let lhi = known;
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
