import assert from "node:assert/strict";
import type { LookupFailure } from "../src/oci/rootfs.ts";
import { applyTarDiff, type BatchMemory, type SourceFile, type TarDiffSource } from "../src/tardiff/apply.ts";
import { ReadBatch } from "../src/tardiff/read_batch.ts";
import { concat } from "../src/util/streams.ts";
import { noise } from "./helpers/data.ts";
import { tarDiff, type TarDiffOp } from "./helpers/tardiff.ts";

/** In-memory source files that count the read calls made on them, and which are still open. */
class CountingSource implements TarDiffSource {
  readonly counts = { reads: 0, bytesRead: 0, open: 0 };
  get reads(): number {
    return this.counts.reads;
  }
  get open_(): number {
    return this.counts.open;
  }
  constructor(readonly files: Record<string, Uint8Array>) {}
  open(path: string): SourceFile | LookupFailure {
    const bytes = this.files[path];
    if (bytes === undefined) return "missing";
    const counts = this.counts;
    counts.open++;
    let closed = false;
    return {
      size: bytes.length,
      read(position, into, offset, length) {
        assert.ok(!closed, `read of ${path} after close`);
        assert.ok(position >= 0 && position + length <= bytes.length, "read within the file");
        counts.reads++;
        counts.bytesRead += length;
        into.set(bytes.subarray(position, position + length), offset);
      },
      close() {
        assert.ok(!closed, `${path} closed twice`);
        closed = true;
        counts.open--;
      },
    };
  }
}

/** A seeded generator of numbers in [0, n). */
function rng(seed: number): (n: number) => number {
  let x = seed;
  return (n) => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) % n;
  };
}

/**
 * The shape of a tar-diff of a binary between distant releases: tens of
 * thousands of tiny Seek/AddData (and a few Copy) ops jumping all over the old
 * file, with Data between them; and the output the ops must give.
 */
function scattered(old: Uint8Array, ops: number, seed: number): { ops: TarDiffOp[]; want: Uint8Array } {
  const r = rng(seed);
  const list: TarDiffOp[] = [{ open: "old" }];
  const want: Uint8Array[] = [];
  for (let i = 0; i < ops; i++) {
    const n = 1 + r(70);
    const at = r(old.length - n);
    list.push({ seek: at });
    if (i % 50 === 0) {
      list.push({ copy: n });
      want.push(old.slice(at, at + n));
    } else {
      const add = noise(n + 4, i + 1).subarray(0, n);
      list.push({ add });
      want.push(old.slice(at, at + n).map((b, k) => (b + add[k]) & 0xff));
    }
    const data = noise(12, i + 7);
    list.push({ data: data.subarray(0, r(12)) });
    want.push(data.subarray(0, (list[list.length - 1] as { data: Uint8Array }).data.length));
  }
  return { ops: list, want: concat(want) };
}

async function rebuild(blob: Uint8Array, source: TarDiffSource, options = {}): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  for await (const c of applyTarDiff(ReadableStream.from([blob]), source, options)) parts.push(c.slice());
  return concat(parts);
}

Deno.test("scattered tiny AddData ops are served with a few reads per batch, not one read per op", async () => {
  const old = noise(4 << 20, 99);
  const { ops, want } = scattered(old, 60_000, 5);
  const source = new CountingSource({ old });
  const got = await rebuild(tarDiff(ops), source);
  assert.equal(got.length, want.length);
  assert.ok(got.every((b, i) => b === want[i]), "rebuilt bytes match");
  // 60,000 reads one by one were the storm; gathered, each output batch sweeps the 4 MiB file in about 4 reads.
  assert.ok(source.reads < 200, `${source.reads} read calls for 60,000 ops`);
  assert.equal(source.open_, 0, "every source file closed");
});

/** A batch memory of `limit` bytes: what is left of it, and how many reservations it granted. */
function batchBudget(limit: number) {
  const budget = {
    left: limit,
    grants: 0,
    memory: {
      reserve(bytes: number): boolean {
        if (bytes > budget.left) return false;
        budget.left -= bytes;
        budget.grants++;
        return true;
      },
      release(bytes: number): void {
        budget.left += bytes;
      },
    } as BatchMemory,
  };
  return budget;
}

/** A batch memory with no room: the batch never grows. */
const NO_MEMORY: BatchMemory = { reserve: () => false, release: () => assert.fail("nothing was taken") };

Deno.test("the output batch grows only within the memory it is given, and gives it back", async () => {
  const old = noise(8 << 20, 3); // 8 buckets: a 256 KiB batch takes 32 read calls per MiB, so it grows
  const { ops, want } = scattered(old, 40_000, 8);
  const budget = batchBudget(1 << 20);
  const source = new CountingSource({ old });
  const got = await rebuild(tarDiff(ops), source, { outputSize: 256 << 10, memory: budget.memory });
  assert.ok(got.every((b, i) => b === want[i]) && got.length === want.length, "rebuilt bytes match");
  assert.ok(budget.grants > 0, "the batch grew");
  assert.equal(budget.left, 1 << 20, "what was taken is given back");
  // Without memory to grow into, the same delta still applies, with more (but still few) reads.
  const tight = new CountingSource({ old });
  const again = await rebuild(tarDiff(ops), tight, { outputSize: 256 << 10, memory: NO_MEMORY });
  assert.ok(again.every((b, i) => b === want[i]) && again.length === want.length);
  assert.ok(tight.reads < 40_000 / 20, `${tight.reads} read calls at a fixed 256 KiB batch`);
});

Deno.test("reads across many source files: each file closed once its gathered reads are done", async () => {
  const files: Record<string, Uint8Array> = {};
  const ops: TarDiffOp[] = [];
  const want: Uint8Array[] = [];
  for (let f = 0; f < 30; f++) {
    const bytes = noise(3000 + f * 17, f + 1);
    files[`f${f}`] = bytes;
    ops.push({ open: `f${f}` });
    for (let k = 0; k < 20; k++) {
      const at = (k * 131) % 2900;
      ops.push({ seek: at }, { copy: 40 });
      want.push(bytes.subarray(at, at + 40));
    }
  }
  const source = new CountingSource(files);
  const got = await rebuild(tarDiff(ops), source);
  assert.deepEqual(got, concat(want));
  assert.equal(source.open_, 0);
  assert.ok(source.reads <= 30, `${source.reads} read calls for 30 files`);
});

Deno.test("ReadBatch: a sparse bucket is read in runs, far-apart reads separately", () => {
  const bytes = noise(1 << 20, 4);
  let reads = 0;
  const file: SourceFile = {
    size: bytes.length,
    read(position, into, offset, length) {
      reads++;
      into.set(bytes.subarray(position, position + length), offset);
    },
    close() {},
  };
  const batch = new ReadBatch();
  const out = new Uint8Array(64);
  // Two reads 900 KiB apart (sparse: two runs), and a run of three close together (one read).
  batch.record(file, 900 << 10, 0, 8, false);
  batch.record(file, 10, 8, 8, false);
  batch.record(file, 30, 16, 8, false);
  batch.record(file, 50, 24, 8, true);
  batch.flush(out);
  assert.equal(reads, 2);
  assert.deepEqual(out.subarray(0, 8), bytes.subarray(900 << 10, (900 << 10) + 8));
  assert.deepEqual(out.subarray(8, 16), bytes.subarray(10, 18));
  assert.deepEqual(out.subarray(16, 24), bytes.subarray(30, 38));
  assert.equal(batch.size, 0);
});

Deno.test("ReadBatch: close closes the files still held, and may be called twice", () => {
  let closed = 0;
  const file: SourceFile = {
    size: 100,
    read(_position, into, offset, length) {
      into.fill(7, offset, offset + length);
    },
    close() {
      closed++;
    },
  };
  const batch = new ReadBatch();
  batch.record(file, 10, 0, 4, false);
  batch.retire(file); // still needed by the recorded read: closed later
  assert.equal(closed, 0);
  batch.close();
  assert.equal(closed, 1);
  batch.close();
  assert.equal(closed, 1);
});

Deno.test("freeInput: the delta's chunks are freed once decoded when each is a whole buffer, and only then", async () => {
  const old = noise(1 << 20, 21);
  const { ops, want } = scattered(old, 5_000, 13);
  const blob = tarDiff(ops);
  // Whole-buffer chunks (as a file or the network gives them), and views into one shared buffer.
  const whole: Uint8Array[] = [];
  for (let at = 0; at < blob.length; at += 4096) whole.push(blob.slice(at, at + 4096));
  const shared = blob.slice();
  const views: Uint8Array[] = [];
  for (let at = 0; at < shared.length; at += 4096) views.push(shared.subarray(at, at + 4096));
  for (const [chunks, freed] of [[whole, true], [views, false]] as const) {
    const parts: Uint8Array[] = [];
    const applied = applyTarDiff(ReadableStream.from(chunks), new CountingSource({ old }), { freeInput: true });
    for await (const c of applied) parts.push(c.slice());
    assert.deepEqual(concat(parts), want);
    const detached = chunks.filter((c) => (c.buffer as ArrayBuffer).detached).length;
    if (freed) assert.ok(detached >= chunks.length - 1, `${detached} of ${chunks.length} whole chunks freed`);
    else assert.equal(detached, 0, "views of a shared buffer are left alone");
  }
  // Without the option nothing is freed.
  const kept: Uint8Array[] = [];
  for (let at = 0; at < blob.length; at += 4096) kept.push(blob.slice(at, at + 4096));
  for await (const _ of applyTarDiff(ReadableStream.from(kept), new CountingSource({ old }))) { /* drain */ }
  assert.equal(kept.filter((c) => (c.buffer as ArrayBuffer).detached).length, 0);
});

Deno.test("a batch that sweeps much more of its files than it outputs grows, even when it takes few read calls", async () => {
  // 4 buckets: a 256 KiB batch takes about 4 read calls (16 per MiB, not over the calls rule) but copies ~4 MiB.
  const old = noise(4 << 20, 21);
  const { ops, want } = scattered(old, 40_000, 4);
  const budget = batchBudget(1 << 30);
  const grown = new CountingSource({ old });
  let most = 0;
  const parts: Uint8Array[] = [];
  const options = { outputSize: 256 << 10, memory: budget.memory };
  for await (const c of applyTarDiff(ReadableStream.from([tarDiff(ops)]), grown, options)) {
    most = Math.max(most, c.length);
    parts.push(c.slice());
  }
  assert.deepEqual(concat(parts), want);
  assert.ok(most >= 1 << 20, `the batch grew to ${most} bytes`);
  assert.equal(budget.left, 1 << 30, "what was taken is given back");
  const fixed = new CountingSource({ old });
  assert.deepEqual(await rebuild(tarDiff(ops), fixed, { outputSize: 256 << 10, memory: NO_MEMORY }), want);
  assert.ok(
    grown.counts.bytesRead * 2 < fixed.counts.bytesRead,
    `bytes swept: ${grown.counts.bytesRead} grown, ${fixed.counts.bytesRead} at a fixed 256 KiB batch`,
  );
});
