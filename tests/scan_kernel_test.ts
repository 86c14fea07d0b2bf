import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { arenasAvailable, disableArenas } from "../src/tardiff/add_kernel.ts";
import { type ApplyOptions, applyTarDiff, type TarDiffSource } from "../src/tardiff/apply.ts";
import { ARENA_RECORDS } from "../src/tardiff/read_batch.ts";
import { concat } from "../src/util/streams.ts";
import { noise } from "./helpers/data.ts";
import { memorySource, tarDiff, type TarDiffOp } from "./helpers/tardiff.ts";

/** Rebuilds with the arena (scan_kernel.ts's loops) and without it: the bytes, or the error's message. */
async function bothWays(blob: Uint8Array, source: TarDiffSource, options: ApplyOptions = {}): Promise<string[]> {
  const results: string[] = [];
  for (const off of [false, true]) {
    disableArenas(off);
    try {
      const parts: Uint8Array[] = [];
      for await (const c of applyTarDiff(ReadableStream.from([blob]), source, options)) parts.push(c.slice());
      results.push(`ok ${digest(concat(parts))}`);
    } catch (e) {
      results.push(`error ${(e as Error).message}`);
    } finally {
      disableArenas(false);
    }
  }
  return results;
}

function digest(b: Uint8Array): string {
  return createHash("sha256").update(b).digest("hex");
}

/** A seeded mix of every op the kernel takes or leaves, and the bytes it rebuilds. */
function mixedOps(old: Uint8Array, other: Uint8Array, count: number): { ops: TarDiffOp[]; want: Uint8Array } {
  const ops: TarDiffOp[] = [{ open: "old" }];
  const want: Uint8Array[] = [];
  let file = old;
  let position = 0;
  let r = 12345;
  const rand = (n: number) => {
    r = (r * 1103515245 + 12345) >>> 0;
    return r % n;
  };
  const sizes = [0, 1, 2, 9, 15, 16, 17, 63, 64, 70, 127, 128, 129, 1000, 16383, 16384, 65535, 65536, 70000];
  for (let k = 0; k < count; k++) {
    const kind = rand(12);
    const n = sizes[rand(sizes.length)];
    if (kind < 4) {
      // Seek anywhere, sizes of every varint length up to the file's.
      position = rand(file.length + 1);
      ops.push({ seek: position });
    } else if (kind < 7 && position + n <= file.length) {
      const add = noise(n, k);
      ops.push({ add });
      want.push(file.slice(position, position + n).map((v, i) => (v + add[i]) & 0xff));
      position += n;
    } else if (kind < 9 && position + n <= file.length) {
      ops.push({ copy: n });
      want.push(file.subarray(position, position + n));
      position += n;
    } else if (kind < 11) {
      const data = noise(n, k + 7);
      ops.push({ data });
      want.push(data);
    } else {
      // Another file: the kernel's records then span two files in one batch.
      file = file === old ? other : old;
      ops.push({ open: file === old ? "old" : "other" });
      position = 0;
    }
  }
  // A Seek in a non-minimal varint of six bytes (the kernel leaves it to JavaScript) and a copy after it.
  ops.push({ open: "old" }, { raw: new Uint8Array([4, 0x85, 0x80, 0x80, 0x80, 0x80, 0x00]) }, { copy: 100 });
  want.push(old.subarray(5, 105));
  return { ops, want: concat(want) };
}

Deno.test("scan kernel: a seeded mix of every op rebuilds the same bytes with and without the arena", async () => {
  if (!arenasAvailable()) {
    console.warn("scan kernel: WebAssembly SIMD is not available here; only the JavaScript path runs");
  }
  const old = noise(3 << 20, 5);
  const other = noise(200_000, 6);
  const { ops, want } = mixedOps(old, other, 4000);
  const expected = `ok ${digest(want)}`;
  const source = memorySource({ old, other });
  // Default sizes, then small ones so that ops cross pieces and batches often.
  for (const options of [{}, { outputSize: 4 << 10, decodeSize: 1 << 10, maxBatchSize: 64 << 10 }]) {
    assert.deepEqual(await bothWays(tarDiff(ops), source, options), [expected, expected], JSON.stringify(options));
  }
  // The old file held in memory: the kernel then leaves its reads to JavaScript.
  assert.deepEqual(await bothWays(tarDiff(ops), memorySource({ old, other }, ["old"])), [expected, expected]);
});

Deno.test("scan kernel: more gathered reads in one batch than the arena holds records for", async () => {
  const old = noise(1 << 20, 9);
  const ops: TarDiffOp[] = [{ open: "old" }];
  const want = new Uint8Array(ARENA_RECORDS + 5000);
  for (let k = 0; k < want.length; k++) {
    const at = (k * 7919) % old.length;
    ops.push({ seek: at }, k % 2 ? { copy: 1 } : { add: new Uint8Array([k & 0xff]) });
    want[k] = k % 2 ? old[at] : (old[at] + k) & 0xff;
  }
  const expected = `ok ${digest(want)}`;
  assert.deepEqual(await bothWays(tarDiff(ops), memorySource({ old })), [expected, expected]);
});

Deno.test("scan kernel: an op past the file's end fails with the same message either way, after many the kernel ran", async () => {
  const old = noise(10_000, 3);
  const many: TarDiffOp[] = [{ open: "old" }];
  for (let k = 0; k < 500; k++) many.push({ seek: k }, { add: new Uint8Array(9) }, { copy: 3 });
  for (
    const [bad, message] of [
      [{ seek: 10_001 }, "Seek at byte"],
      [{ copy: 10_000 }, "Copy at byte"],
      [{ add: new Uint8Array(10_000) }, "AddData at byte"],
    ] as const
  ) {
    const results = await bothWays(tarDiff([...many, { seek: 9_990 }, bad]), memorySource({ old }));
    assert.equal(results[0], results[1]);
    assert.match(results[0], new RegExp(`^error tar-diff: ${message} \\d+ \\(source "old"\\)`));
  }
  // Seek, Copy and AddData with no file open.
  for (const bad of [{ seek: 0 }, { copy: 1 }, { add: new Uint8Array(1) }]) {
    const results = await bothWays(tarDiff([{ data: "x" }, bad]), memorySource({ old }));
    assert.equal(results[0], results[1]);
    assert.match(results[0], /no source file is open/);
  }
});
