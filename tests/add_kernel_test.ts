import assert from "node:assert/strict";
import { ARENA_START, arenasAvailable, disableArenas, PAD, returnArena, takeArena } from "../src/tardiff/add_kernel.ts";
import { applyTarDiff } from "../src/tardiff/apply.ts";
import { concat } from "../src/util/streams.ts";
import { noise } from "./helpers/data.ts";
import { memorySource, tarDiff, type TarDiffOp } from "./helpers/tardiff.ts";

Deno.test("add kernel: WebAssembly SIMD is there on the platforms deltaship ships for", () => {
  if (["x86_64", "aarch64"].includes(Deno.build.arch)) assert.ok(arenasAvailable());
});

Deno.test("add kernel: every run length and alignment adds modulo 256 and copies, touching nothing past the run", () => {
  const arena = takeArena(ARENA_START + 4096)!;
  if (!arena) return; // not available here: the JavaScript paths are tested below either way
  const b = arena.bytes;
  for (let n = 0; n <= 100; n++) {
    for (const skew of [0, 1, 7, 15]) {
      const dst = ARENA_START + skew;
      const src = ARENA_START + 1024 + ((skew * 5) % 16);
      const before = noise(n + 64, n * 31 + skew);
      const data = noise(n + PAD, n * 17 + skew + 1);
      b.set(before, dst);
      b.set(data, src);
      arena.add(dst, src, n);
      for (let i = 0; i < n + 64; i++) {
        const want = i < n ? (before[i] + data[i]) & 0xff : before[i];
        assert.equal(b[dst + i], want, `add: byte ${i} of a run of ${n} at skew ${skew}`);
      }
      b.set(before, dst);
      arena.copy(dst, src, n);
      for (let i = 0; i < n + 64; i++) {
        assert.equal(b[dst + i], i < n ? data[i] : before[i], `copy: byte ${i} of a run of ${n}`);
      }
    }
  }
  returnArena(arena);
});

Deno.test("add kernel: a thread keeps one spare arena, the largest given back", () => {
  const a = takeArena(1 << 20);
  if (!a) return;
  const b = takeArena(1 << 20)!;
  assert.notEqual(a, b, "an arena in use is not handed out twice");
  returnArena(a);
  assert.equal(takeArena(1 << 16), a, "the spare is reused for a request it covers");
  returnArena(a);
  assert.notEqual(takeArena(4 << 20), a, "a larger request gets a new arena");
  returnArena(b);
});

Deno.test("tar-diff: the arena and the JavaScript paths rebuild the same bytes (small, large and unaligned adds)", async () => {
  const old = noise(3 << 20, 11);
  const ops: TarDiffOp[] = [{ open: "old" }];
  const want: Uint8Array[] = [];
  let seed = 1;
  // Tiny and mid-sized adds at odd positions, a large add (past the gathering limit), copies and data between.
  for (const n of [1, 3, 15, 16, 17, 31, 47, 48, 49, 100, 1000, 4095, 70_000, 200_003, 9, 64 << 10]) {
    const at = (n * 7919 + 13) % (old.length - n);
    const add = noise(n, seed++);
    ops.push({ seek: at }, { add });
    want.push(old.slice(at, at + n).map((v, k) => (v + add[k]) & 0xff));
    const data = noise((n % 37) + 1, seed++);
    ops.push({ data });
    want.push(data);
    ops.push({ seek: (at * 3) % (old.length - n) }, { copy: n });
    want.push(old.subarray((at * 3) % (old.length - n), (at * 3) % (old.length - n) + n));
  }
  const blob = tarDiff(ops);
  const expected = concat(want);
  for (const off of [false, true]) {
    disableArenas(off);
    try {
      const parts: Uint8Array[] = [];
      // A small output and decode size, so that runs cross chunk and piece boundaries.
      const chunks = applyTarDiff(ReadableStream.from([blob]), memorySource({ old }), {
        outputSize: 64 << 10,
        decodeSize: 8 << 10,
      });
      for await (const c of chunks) parts.push(c.slice());
      const got = concat(parts);
      assert.equal(got.length, expected.length);
      assert.ok(got.every((v, i) => v === expected[i]), `rebuilt bytes match (arenas ${off ? "off" : "on"})`);
    } finally {
      disableArenas(false);
    }
  }
});
