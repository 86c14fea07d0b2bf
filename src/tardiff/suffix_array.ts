/**
 * Suffix arrays by induced sorting (SA-IS, Nong, Zhang and Chan 2009): linear
 * time, on typed arrays only. The tar-diff encoder sorts every source file it
 * diffs against, so this is the encoder's most expensive step; it allocates
 * nothing per element, needs the text, the result (4 bytes per byte of text) and
 * bucket tables of the alphabet's size, and reuses the result array's free space
 * for the recursion.
 *
 * Conventions: the text is followed by a virtual sentinel smaller than every
 * symbol (so suffix `n-1` is L-type). While inducing, 0 marks an empty slot
 * (suffix 0 never induces anything, so it can share that value) and a negative
 * value `~p` marks a suffix whose predecessor still has to be induced in the
 * S-type pass.
 *
 * @module
 */

/** A text the sorter accepts: bytes at the top level, integer names below. */
type Text = Uint8Array | Int32Array;

/**
 * Builds the suffix array of `text`: the start offsets of all its suffixes in
 * lexicographic order (a shorter suffix sorts before its extensions). `out`, when
 * given, must hold at least `text.length` entries and is filled and returned.
 */
export function suffixArray(text: Uint8Array, out?: Int32Array): Int32Array {
  const n = text.length;
  if (n >= 0x7fffffff) throw new RangeError("text too large for a 32-bit suffix array");
  const sa = out ? out.subarray(0, n) : new Int32Array(n);
  if (n === 0) return sa;
  if (n === 1) {
    sa[0] = 0;
    return sa;
  }
  sais(text, sa, n, 256, new Int32Array(0));
  return sa;
}

/**
 * A sparse suffix array: the suffixes that start at multiples of `step` (1 to 4),
 * in lexicographic order. Built by ranking the `step`-byte blocks of the text and
 * sorting the suffixes of the block string, so it costs about 1/`step` of the full
 * array in time and memory: besides the text, two arrays of `ceil(n / step)`
 * entries and bucket tables of up to twice that. `out` and `work`, when given
 * (each at least that long), are those two; the result is a view of `out`, and
 * `work` holds nothing useful afterwards. With `spendText`, the text is not
 * needed once its blocks are ranked, and its memory serves for the bucket tables
 * where they fit: the text's bytes are then garbage when this returns.
 */
export function sparseSuffixArray(
  text: Uint8Array,
  step: number,
  out?: Int32Array,
  work?: Int32Array,
  spendText = false,
): Int32Array {
  if (step === 1) return suffixArray(text, out);
  if (!Number.isInteger(step) || step < 1 || step > 4) throw new RangeError(`suffix array step ${step} is not 1 to 4`);
  const n = text.length;
  const blocks = Math.ceil(n / step);
  const sa = out && out.length >= blocks ? out.subarray(0, blocks) : new Int32Array(blocks);
  if (blocks <= 1) return sa;
  const ranks = work && work.length >= blocks ? work.subarray(0, blocks) : new Int32Array(blocks);
  const k = rankBlocks(text, step, ranks, sa);
  const spent = spendText && text.byteOffset % 4 === 0
    ? new Int32Array(text.buffer, text.byteOffset, text.byteLength >> 2)
    : undefined;
  sais(ranks, sa, blocks, k, spent && spent.length >= k ? spent : new Int32Array(2 * k));
  for (let i = 0; i < blocks; i++) sa[i] *= step;
  return sa;
}

/** The `step` bytes at `at`, big-endian, zero-padded past the end, in the top bits of an int32. */
function blockKey(text: Uint8Array, at: number, step: number): number {
  const n = text.length;
  let v = 0;
  for (let j = 0; j < step; j++) v = (v << 8) | (at + j < n ? text[at + j] : 0);
  return v << (8 * (4 - step));
}

/**
 * Writes into `ranks` each `step`-byte block's rank among all blocks of `text`
 * (order-preserving, so suffixes of the rank string sort as the byte suffixes at
 * block starts do). A final short block ranks just below the full blocks it is
 * a prefix of. `work` is scratch of the same length; keys are recomputed from the
 * text rather than stored, so no third array is needed. Returns the alphabet size.
 */
function rankBlocks(text: Uint8Array, step: number, ranks: Int32Array, work: Int32Array): number {
  const blocks = ranks.length;
  const full = Math.floor(text.length / step);
  // Keys of full blocks are computed inline (a call per key costs twice the time):
  // bytes a, a+1 and, by step, a+2 and a+3, big-endian in the top bits.
  const s3 = step > 2;
  const s4 = step > 3;
  // LSD radix sort of the full blocks by key, 16 bits at a time: into `work`, then into `ranks`.
  const count = new Int32Array(65537);
  for (let b = 0, a = 0; b < full; b++, a += step) {
    count[((s3 ? text[a + 2] << 8 : 0) | (s4 ? text[a + 3] : 0)) + 1]++;
  }
  for (let i = 1; i <= 65536; i++) count[i] += count[i - 1];
  for (let b = 0, a = 0; b < full; b++, a += step) {
    work[count[(s3 ? text[a + 2] << 8 : 0) | (s4 ? text[a + 3] : 0)]++] = b;
  }
  count.fill(0);
  for (let b = 0, a = 0; b < full; b++, a += step) count[((text[a] << 8) | text[a + 1]) + 1]++;
  for (let i = 1; i <= 65536; i++) count[i] += count[i - 1];
  const order = ranks;
  for (let i = 0; i < full; i++) {
    const b = work[i];
    const a = b * step;
    order[count[(text[a] << 8) | text[a + 1]]++] = b;
  }
  // Dense ranks into `work`, by block. A short final block (if any) ranks just
  // below the first full block whose key is not below its padded key; full
  // blocks from there shift up.
  const shortKey = full < blocks ? blockKey(text, full * step, step) >>> 0 : -1;
  let shortRank = -1;
  let rank = -1;
  let prev = -1;
  for (let i = 0; i < full; i++) {
    const b = order[i];
    const a = b * step;
    const key = ((text[a] << 24) | (text[a + 1] << 16) | (s3 ? text[a + 2] << 8 : 0) | (s4 ? text[a + 3] : 0)) >>> 0;
    if (key !== prev) {
      rank++;
      if (shortRank < 0 && shortKey >= 0 && key >= shortKey) shortRank = rank++;
      prev = key;
    }
    work[b] = rank;
  }
  if (shortKey >= 0) work[full] = shortRank < 0 ? ++rank : shortRank;
  ranks.set(work);
  return rank + 1;
}

/** Symbol counts of `t[0..n)` into `c` (length `k`). */
function countSymbols(t: Text, n: number, c: Int32Array): void {
  c.fill(0);
  for (let i = 0; i < n; i++) c[t[i]]++;
}

/** Bucket starts (`end` false) or ends (`end` true) from counts. */
function bucketBounds(c: Int32Array, b: Int32Array, k: number, end: boolean): void {
  let sum = 0;
  if (end) {
    for (let i = 0; i < k; i++) {
      sum += c[i];
      b[i] = sum;
    }
  } else {
    for (let i = 0; i < k; i++) {
      const x = c[i]; // c and b may be one array
      b[i] = sum;
      sum += x;
    }
  }
}

/**
 * Induces the order of all suffixes from the LMS suffixes already placed at the
 * ends of their buckets: L-type suffixes left to right, then S-type suffixes
 * right to left. `c` holds the counts (recounted into `c` when `recount`, where
 * `c` and `b` may then be the same array). Afterwards LMS suffixes are left
 * marked `~x` (so stage 1 can pick them out in one sequential scan) and every
 * other entry is plain.
 */
function induce(t: Text, sa: Int32Array, n: number, k: number, c: Int32Array, b: Int32Array, recount: boolean): void {
  // L-type pass, bucket heads. The virtual sentinel induces suffix n-1 first.
  if (recount) countSymbols(t, n, c);
  bucketBounds(c, b, k, false);
  let p = n - 1;
  let ch = t[p];
  sa[b[ch]++] = p > 0 && t[p - 1] < ch ? ~p : p;
  for (let i = 0; i < n; i++) {
    const v = sa[i];
    if (v > 0) {
      p = v - 1;
      ch = t[p];
      sa[b[ch]++] = p > 0 && t[p - 1] < ch ? ~p : p;
    }
  }
  // S-type pass, bucket ends. Entries marked negative have an S-type predecessor,
  // except LMS suffixes (whose predecessor is L-type), which stay marked.
  if (recount) countSymbols(t, n, c);
  bucketBounds(c, b, k, true);
  for (let i = n - 1; i >= 0; i--) {
    const v = sa[i];
    if (v < 0) {
      const x = ~v;
      p = x - 1;
      ch = t[p];
      if (ch > t[x]) continue; // LMS: its L-type predecessor is placed already
      sa[i] = x;
      sa[--b[ch]] = p > 0 ? ~p : p;
    }
  }
}

/**
 * Sorts the suffixes of `t[0..n)` (symbols in `[0, k)`) into `sa[0..n)`.
 * `scratch` is free memory this level may use for bucket tables.
 */
function sais(t: Text, sa: Int32Array, n: number, k: number, scratch: Int32Array): void {
  // Bucket tables: two when they fit, else one shared (counts recomputed on use).
  let c: Int32Array;
  let b: Int32Array;
  let recount = false;
  let used = 0; // of scratch, by this level's tables; the rest is free for the recursion
  if (k <= 1 << 16) {
    c = new Int32Array(k);
    b = new Int32Array(k);
  } else if (k <= scratch.length) {
    c = scratch.subarray(0, k);
    b = 2 * k <= scratch.length ? scratch.subarray(k, 2 * k) : new Int32Array(k);
    used = 2 * k <= scratch.length ? 2 * k : k;
  } else {
    // Short of memory: one table, counts recomputed whenever they are needed.
    c = b = new Int32Array(k);
    recount = true;
  }

  // Stage 1: place LMS suffixes at bucket ends (text order is fine), induce,
  // which sorts the LMS substrings.
  countSymbols(t, n, c);
  bucketBounds(c, b, k, true);
  sa.fill(0, 0, n);
  let m = 0;
  {
    // Right-to-left type scan: suffix n-1 is L-type (the sentinel is smaller).
    let sType = false;
    for (let i = n - 2; i >= 0; i--) {
      const a = t[i];
      const nx = t[i + 1];
      const s: boolean = a < nx || (a === nx && sType);
      if (!s && sType) {
        sa[--b[nx]] = i + 1;
        m++;
      }
      sType = s;
    }
  }
  if (m > 1) {
    induce(t, sa, n, k, c, b, recount);
  }

  // Compact the sorted LMS suffixes into sa[0..m).
  let j = 0;
  if (m > 1) {
    for (let i = 0; i < n; i++) {
      const v = sa[i];
      if (v < 0) sa[j++] = ~v;
    }
  } else if (m === 1) {
    // The only LMS suffix is where stage 1 placed it.
    for (let i = 0; i < n; i++) {
      if (sa[i] > 0) {
        sa[0] = sa[i];
        break;
      }
    }
  }

  if (m > 1) {
    // Name the LMS substrings; a name per position kept at sa[m + (x >> 1)]
    // (LMS positions are at least two apart, and m <= n/2).
    sa.fill(0, m, n);
    // Substring lengths (to the next LMS position, inclusive), right to left.
    {
      let sType = false;
      let next = n; // the sentinel ends the last substring
      for (let i = n - 2; i >= 0; i--) {
        const a = t[i];
        const nx = t[i + 1];
        const s: boolean = a < nx || (a === nx && sType);
        if (!s && sType) {
          const x = i + 1;
          sa[m + (x >> 1)] = next - x + 1;
          next = x;
        }
        sType = s;
      }
    }
    let names = 0;
    let q = -1;
    let qlen = 0;
    for (let i = 0; i < m; i++) {
      const p = sa[i];
      const plen = sa[m + (p >> 1)];
      let same = false;
      if (plen === qlen && q >= 0 && p + plen <= n && q + qlen <= n) {
        let l = 0;
        while (l < plen && t[p + l] === t[q + l]) l++;
        same = l === plen;
      }
      if (!same) {
        names++;
        q = p;
        qlen = plen;
      }
      sa[m + (p >> 1)] = names;
    }

    if (names < m) {
      // Stage 2: the reduced text (names in text order) at the end of sa; recurse.
      const ra = sa.subarray(n - m, n);
      let w = m - 1;
      for (let i = m + ((n - 1) >> 1); i >= m; i--) {
        const v = sa[i];
        if (v !== 0) ra[w--] = v - 1;
      }
      // Its tables go in the larger of the free middle of sa and what this level left of its scratch.
      const free = sa.subarray(m, n - m);
      const left = scratch.subarray(used);
      sais(ra, sa.subarray(0, m), m, names, left.length > free.length ? left : free);
      // Map ranks of the reduced problem back to text positions.
      w = m - 1;
      let sType = false;
      for (let i = n - 2; i >= 0; i--) {
        const a = t[i];
        const nx = t[i + 1];
        const s: boolean = a < nx || (a === nx && sType);
        if (!s && sType) ra[w--] = i + 1;
        sType = s;
      }
      for (let i = 0; i < m; i++) sa[i] = ra[sa[i]];
    }
  }

  // Stage 3: sorted LMS suffixes to the ends of their buckets, in order; induce.
  if (m > 0) {
    if (recount) countSymbols(t, n, c); // else the counts of stage 1 are intact (the recursion has its own tables)
    bucketBounds(c, b, k, true);
    sa.fill(0, m, n);
    for (let i = m - 1; i >= 0; i--) {
      const x = sa[i];
      sa[i] = 0;
      sa[--b[t[x]]] = x;
    }
  }
  induce(t, sa, n, k, c, b, recount);
  for (let i = 0; i < n; i++) {
    const v = sa[i];
    if (v < 0) sa[i] = ~v;
  }
}
