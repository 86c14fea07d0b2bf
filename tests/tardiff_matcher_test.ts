import assert from "node:assert/strict";
import zlib from "node:zlib";
import { sparseSuffixArray, suffixArray } from "../src/tardiff/suffix_array.ts";
import { MatchIndex, planDiff } from "../src/tardiff/bsdiff.ts";
import { COPY_MIN, OpWriter } from "../src/tardiff/op_writer.ts";
import { MAX_OPEN_NAME, Op } from "../src/tardiff/format.ts";
import { concat } from "../src/util/streams.ts";

/** A small seeded PRNG (mulberry32), so failures reproduce. */
function prng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Suffixes sorted by comparison: the reference the fast sorts must agree with. */
function naiveSuffixArray(t: Uint8Array): number[] {
  const idx = Array.from({ length: t.length }, (_, i) => i);
  return idx.sort((a, b) => {
    while (a < t.length && b < t.length) {
      if (t[a] !== t[b]) return t[a] - t[b];
      a++;
      b++;
    }
    return a === t.length ? -1 : 1;
  });
}

/** Texts that stress induced sorting: random over small and large alphabets, runs, periodic repeats. */
function texts(rnd: () => number, count: number): Uint8Array[] {
  const out: Uint8Array[] = [
    new Uint8Array(0),
    new Uint8Array([7]),
    new Uint8Array(100).fill(3),
    Uint8Array.from({ length: 256 }, (_, i) => 255 - i),
    Uint8Array.from({ length: 256 }, (_, i) => i),
    new TextEncoder().encode("mississippi$banana$abracadabra"),
  ];
  for (let i = 0; i < count; i++) {
    const n = Math.floor(rnd() * 400);
    const k = [1, 2, 3, 4, 17, 256][Math.floor(rnd() * 6)];
    const t = Uint8Array.from({ length: n }, () => Math.floor(rnd() * k));
    if (rnd() < 0.3) {
      const period = 1 + Math.floor(rnd() * 12);
      for (let j = period; j < n; j++) if (rnd() < 0.95) t[j] = t[j - period];
    }
    out.push(t);
  }
  return out;
}

Deno.test("suffixArray (SA-IS) agrees with a comparison sort", () => {
  const rnd = prng(1);
  for (const t of texts(rnd, 400)) {
    assert.deepEqual(Array.from(suffixArray(t)), naiveSuffixArray(t), `text ${Array.from(t)}`);
  }
});

Deno.test("sparseSuffixArray sorts exactly the suffixes at multiples of the step", () => {
  const rnd = prng(2);
  for (const t of texts(rnd, 300)) {
    const full = naiveSuffixArray(t);
    for (const step of [1, 2, 3, 4]) {
      const want = full.filter((p) => p % step === 0);
      assert.deepEqual(Array.from(sparseSuffixArray(t, step)), want, `step ${step}, text ${Array.from(t)}`);
    }
  }
  assert.throws(() => sparseSuffixArray(new Uint8Array(10), 5), RangeError);
});

Deno.test("sparseSuffixArray that spends its text sorts as one that keeps it", () => {
  // 2^20 four-byte blocks drawn from 150,000 values: more than 65,536 symbols, so
  // the bucket tables are big enough to be put in the text's memory.
  const rnd = prng(5);
  const values = Uint32Array.from({ length: 150_000 }, () => Math.floor(rnd() * 2 ** 32));
  const blocks = Uint32Array.from({ length: 1 << 20 }, () => values[Math.floor(rnd() * values.length)]);
  const text = new Uint8Array(blocks.buffer, 0, blocks.byteLength - 3); // a short last block too
  const kept = sparseSuffixArray(text.slice(), 4);
  const spent = text.slice();
  assert.deepEqual(sparseSuffixArray(spent, 4, undefined, undefined, true), kept);
  assert.notDeepEqual(spent, text, "the text's memory was used");
});

Deno.test("MatchIndex buckets bound every suffix by its first two bytes, and by three in the large buckets", () => {
  const rnd = prng(3);
  for (const t of texts(rnd, 100)) {
    for (const step of [1, 3, 4]) {
      const sa = sparseSuffixArray(t, step);
      for (const subtableMin of [0, 3, Infinity]) {
        const index = new MatchIndex(t, sa, step, subtableMin);
        const what = `step ${step}, tables past ${subtableMin}, text ${Array.from(t)}`;
        let tables = 0;
        for (let i = 0; i < sa.length; i++) {
          const p = sa[i];
          if (p + 2 > t.length) continue;
          const key = (t[p] << 8) | t[p + 1];
          assert.ok(index.buckets[key] <= i && i < index.buckets[key + 1], `slot ${i}, ${what}`);
          const size = index.buckets[key + 1] - index.buckets[key];
          assert.equal(index.subOf[key] >= 0, size > subtableMin, `a table exactly for large buckets, ${what}`);
          if (index.subOf[key] < 0 || p + 3 > t.length) continue;
          const at = index.subOf[key] + t[p + 2];
          assert.ok(index.sub[at] <= i && i < index.sub[at + 1], `slot ${i} by three bytes, ${what}`);
          tables++;
        }
        if (subtableMin === Infinity) assert.equal(index.sub.length, 0);
        else if (subtableMin === 0 && sa.length > 3) assert.ok(tables > 0, `some table used, ${what}`);
      }
    }
  }
});

/** Rebuilds the target from a plan: source plus difference for `add`, then the target's own bytes. */
function replay(source: Uint8Array, target: Uint8Array, plan: { entries: Int32Array; length: number }): Uint8Array {
  const out = new Uint8Array(target.length);
  let o = 0;
  for (let i = 0; i < plan.length; i += 4) {
    const [t, s, add, extra] = plan.entries.subarray(i, i + 4);
    assert.equal(t, o, "plan entries are contiguous");
    assert.ok(s >= 0 && s + add <= source.length, "add stays inside the source");
    for (let k = 0; k < add; k++) out[o + k] = source[s + k] + ((target[t + k] - source[s + k]) & 0xff);
    out.set(target.subarray(t + add, t + add + extra), o + add);
    o += add + extra;
  }
  assert.equal(o, target.length, "plan covers the whole target");
  return out;
}

/** An edited copy of `source`: byte patches, an insertion, a deletion, a moved block. */
function edit(source: Uint8Array, rnd: () => number): Uint8Array {
  const t = Array.from(source);
  for (let i = 0; i < 1 + t.length / 200; i++) t[Math.floor(rnd() * t.length)] = Math.floor(rnd() * 256);
  const at = Math.floor(rnd() * t.length);
  t.splice(at, 0, ...Array.from({ length: Math.floor(rnd() * 300) }, () => Math.floor(rnd() * 256)));
  const del = Math.floor(rnd() * t.length);
  t.splice(del, Math.floor(rnd() * 200));
  const from = Math.floor(rnd() * t.length);
  const block = t.splice(from, Math.floor(rnd() * 500));
  t.splice(Math.floor(rnd() * t.length), 0, ...block);
  return Uint8Array.from(t);
}

Deno.test("planDiff plans cover the target exactly and mostly reuse the source", () => {
  const rnd = prng(4);
  for (let round = 0; round < 20; round++) {
    // Binary-like source: structured records with small numbers, some text.
    const n = 2000 + Math.floor(rnd() * 30000);
    const source = Uint8Array.from({ length: n }, (_, i) => (i % 16 < 4 ? (i >> 4) & 0xff : Math.floor(rnd() * 40)));
    const target = edit(source, rnd);
    for (const step of [1, 2, 4]) {
      // Third-byte tables (the default where buckets are large) for every bucket, and for none.
      for (const subtableMin of [undefined, 0, Infinity]) {
        const index = new MatchIndex(source, sparseSuffixArray(source, step), step, subtableMin);
        const plan = planDiff(index, target);
        assert.deepEqual(replay(source, target, plan), target);
        let extra = 0;
        for (let i = 0; i < plan.length; i += 4) extra += plan.entries[i + 3];
        assert.ok(extra < target.length / 4, `step ${step}: ${extra} of ${target.length} bytes sent as new data`);
      }
    }
  }
  // Repetitive and incompressible inputs (where match extension and search
  // backoff bound the work): the plan still rebuilds the target.
  const n = 300_000;
  const periodic = Uint8Array.from({ length: n }, (_, i) => "abcdefghij".charCodeAt(i % 10));
  const shifted = periodic.slice(3);
  for (let i = 0; i < shifted.length; i += 4096) shifted[i] = 0;
  const noise = new Uint8Array(n).map(() => Math.floor(rnd() * 256));
  const noise2 = noise.slice();
  noise2.set(new Uint8Array(5000).map(() => Math.floor(rnd() * 256)), 100_000); // a new stretch
  for (const [source, target] of [[periodic, shifted], [noise, noise2], [new Uint8Array(n), noise]]) {
    for (const step of [1, 4]) {
      for (const subtableMin of [undefined, 0]) {
        const plan = planDiff(new MatchIndex(source, sparseSuffixArray(source, step), step, subtableMin), target);
        assert.deepEqual(replay(source, target, plan), target);
      }
    }
  }
  const plan = planDiff(new MatchIndex(noise, suffixArray(noise)), noise2);
  let extra = 0;
  for (let i = 0; i < plan.length; i += 4) extra += plan.entries[i + 3];
  assert.ok(extra <= 5000 + 64, `${extra} bytes of new data for a 5000-byte new stretch`);
  // Degenerate inputs.
  for (const [s, t] of [[0, 10], [10, 0], [1, 1], [5, 5000]]) {
    const source = new Uint8Array(s).fill(1);
    const target = new Uint8Array(t).fill(1);
    assert.deepEqual(replay(source, target, planDiff(new MatchIndex(source, suffixArray(source)), target)), target);
  }
});

/** Parses a raw op stream, checking minimal varints. */
function parseOps(stream: Uint8Array): { op: number; size: number; data?: Uint8Array }[] {
  const ops = [];
  let i = 0;
  while (i < stream.length) {
    const op = stream[i++];
    let size = 0;
    let mul = 1;
    const start = i;
    for (;;) {
      const b = stream[i++];
      size += (b & 0x7f) * mul;
      mul *= 128;
      if (b < 0x80) {
        assert.ok(!(b === 0 && i - start > 1), "varint is minimal");
        break;
      }
    }
    if (op === Op.Data || op === Op.Open || op === Op.AddData) {
      ops.push({ op, size, data: stream.subarray(i, i + size) });
      i += size;
    } else {
      ops.push({ op, size });
    }
  }
  return ops;
}

Deno.test("OpWriter: coalesced Data, Copy for exact runs, Seek and Open only when needed", async () => {
  const chunks: Uint8Array[] = [];
  const w = new OpWriter((c) => (chunks.push(c), Promise.resolve()));
  await w.data(new Uint8Array([1, 2]));
  await w.zeros(3);
  await w.data(new Uint8Array([4]));
  await w.sourceAt("usr/bin/tool", 0);
  const n = 2 * COPY_MIN + 100;
  const source = Uint8Array.from({ length: n }, (_, i) => i & 0xff);
  const target = source.slice();
  target[10] = 99; // near the start: stays in one AddData with its neighbours
  target[COPY_MIN + 50] = 7; // ends an exact run of COPY_MIN + 39 bytes, which becomes a Copy
  await w.approximate(target, 0, source, 0, n);
  await w.sourceAt("usr/bin/tool", n); // same file, same position: nothing
  await w.sourceAt("usr/bin/tool", 0);
  await w.copy(5);
  await w.end();
  const ops = parseOps(concat(chunks));
  assert.deepEqual(ops.map((o) => [o.op, o.size]), [
    [Op.Data, 6],
    [Op.Open, "usr/bin/tool".length],
    [Op.AddData, 11],
    [Op.Copy, COPY_MIN + 39],
    [Op.AddData, 1],
    [Op.Copy, n - COPY_MIN - 51],
    [Op.Seek, 0],
    [Op.Copy, 5],
  ]);
  assert.deepEqual(Array.from(ops[0].data!), [1, 2, 0, 0, 0, 4]);
  assert.equal(ops[2].data![10], (99 - 10) & 0xff);
  // A short exact run between differences stays in the AddData.
  const w2 = new OpWriter(() => Promise.resolve());
  await w2.sourceAt("f", 0);
  const t2 = source.slice();
  t2[0] = 1;
  t2[40] = 2;
  await w2.approximate(t2, 0, source, 0, 41);
  assert.deepEqual(w2.counts, { data: 0, copy: 0, addData: 41, opens: 1, seeks: 0, zstdDict: 0 });
  assert.equal(w.outputSize, 6 + n + 5);
});

Deno.test("OpWriter splits long Data and AddData, and refuses Open names over 4 KiB", async () => {
  const chunks: Uint8Array[] = [];
  const w = new OpWriter((c) => (chunks.push(c), Promise.resolve()));
  const big = Uint8Array.from({ length: 3_500_000 }, (_, i) => (i * 31) & 0xff);
  await w.data(big);
  await w.sourceAt("f", 0);
  const source = new Uint8Array(big.length);
  await w.approximate(big, 0, source, 0, big.length);
  await w.end();
  assert.ok(chunks.every((c) => c.length <= 1 << 20), "chunks stay bounded");
  const ops = parseOps(concat(chunks));
  const data = ops.filter((o) => o.op === Op.Data);
  const adds = ops.filter((o) => o.op === Op.AddData);
  assert.ok(data.length >= 4 && data.every((o) => o.size <= 1 << 20));
  assert.ok(adds.length >= 4 && adds.every((o) => o.size <= 1 << 20));
  assert.deepEqual(concat(data.map((o) => o.data!)), big);
  assert.deepEqual(concat(adds.map((o) => o.data!)), big);
  await assert.rejects(() => w.sourceAt("x".repeat(MAX_OPEN_NAME + 1), 0), RangeError);
  await w.sourceAt("é".repeat(MAX_OPEN_NAME / 2), 0); // 4096 bytes of UTF-8 is still fine
});

Deno.test("the op stream is a valid zstd stream once compressed (sanity of chunk handover)", async () => {
  const chunks: Uint8Array[] = [];
  const w = new OpWriter((c) => (chunks.push(c), Promise.resolve()));
  for (let i = 0; i < 1000; i++) await w.data(new TextEncoder().encode(`line ${i}\n`));
  await w.end();
  const raw = concat(chunks);
  const z = zlib.zstdCompressSync(raw);
  assert.deepEqual(new Uint8Array(zlib.zstdDecompressSync(z)), raw);
});
