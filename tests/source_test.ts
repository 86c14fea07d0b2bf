import assert from "node:assert/strict";
import { MemoryBudget, ObjectSource, type SourceEntry, type SourceIndex } from "../src/delta/source_files.ts";
import { LimitError, RepositoryError } from "../src/errors.ts";
import { Repository } from "../src/repo/repository.ts";
import type { SourceFile } from "../src/tardiff/apply.ts";
import { toHex } from "../src/util/digest.ts";
import { tempDir } from "./helpers/cli.ts";

function content(n: number): Uint8Array {
  return new Uint8Array(n).map((_, i) => (i * 131 + (i >> 8)) & 0xff);
}

/** A new repository at DIR/repo holding one object of `bytes`, named `hex`. */
async function repoWithObject(dir: string, bytes: Uint8Array) {
  const repo = await Repository.open(`${dir}/repo`);
  const staging = await repo.objects.stage();
  const hex = toHex(staging.putSmall(bytes));
  await staging.commit();
  return { repo, bytes, hex };
}

/** Reads `file` at scattered positions; returns what each read gave. */
function scatter(file: SourceFile, reads: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let i = 0; i < reads; i++) {
    const pos = (i * 7919) % (file.size - 40);
    const buf = new Uint8Array(40);
    file.read(pos, buf, 3, 37);
    out.push(buf);
  }
  return out;
}

Deno.test("source files: random reads are positional reads that take nothing from the budget", async () => {
  await using tmp = await tempDir();
  const { repo, bytes, hex } = await repoWithObject(tmp.path, content(300_000));
  const index: SourceIndex = new Map<string, SourceEntry | "not a regular file">([
    ["big", { object: hex, size: bytes.length }],
    ["empty", { size: 0 }],
    ["dir", "not a regular file"],
  ]);
  const want = scatter({
    size: bytes.length,
    read: (p, into, o, n) => into.set(bytes.subarray(p, p + n), o),
    close() {},
  }, 500);

  // A version-1 delta must not pay for the dictionary budget (issue 15): however
  // roomy the budget, a file read at random stays on disk.
  const budget = MemoryBudget.create(1 << 20);
  const roomy = new ObjectSource(repo.objects, index, budget);
  const a = roomy.open("big") as SourceFile;
  assert.deepEqual(scatter(a, 500), want);
  assert.ok(a.bytes === undefined, "read at random: not held in memory");
  assert.equal(budget.reserve(1 << 20), true, "nothing came out of the budget");
  budget.release(1 << 20);
  a.close();
  roomy.release();

  const tight = new ObjectSource(repo.objects, index, MemoryBudget.create(100_000));
  const b = tight.open("big") as SourceFile;
  assert.deepEqual(scatter(b, 500), want);
  b.close();

  assert.equal(tight.open("nope"), "missing");
  assert.equal(tight.open("dir"), "not a regular file");
  const empty = tight.open("empty") as SourceFile;
  assert.equal(empty.size, 0);
  empty.read(0, new Uint8Array(0), 0, 0);

  // A recorded object that is gone, or shorter than recorded, is a repository fault.
  const broken: SourceIndex = new Map<string, SourceEntry>([["gone", { object: "ab".repeat(32), size: 10 }], ["short", {
    object: hex,
    size: bytes.length + 10,
  }]]);
  const src = new ObjectSource(repo.objects, broken);
  assert.throws(
    () => src.open("gone"),
    (e) => e instanceof RepositoryError && /object abab.* is missing/.test(e.message),
  );
  const short = src.open("short") as SourceFile;
  assert.throws(
    () => short.read(bytes.length, new Uint8Array(10), 0, 10),
    (e) => e instanceof RepositoryError && /is shorter than recorded; run fsck/.test(e.message),
  );
  short.close();
  await repo.close();
});

Deno.test("source files: a dictionary comes whole out of the budget; a job waits for room, and one that can never fit fails", async () => {
  await using tmp = await tempDir();
  const { repo, bytes, hex } = await repoWithObject(tmp.path, content(300_000));
  const index: SourceIndex = new Map<string, SourceEntry>([["lib/big.so", { object: hex, size: bytes.length }]]);

  const budget = MemoryBudget.create(400 << 10);
  assert.equal(budget.total, 400 << 10);
  const one = new ObjectSource(repo.objects, index, budget);
  const a = one.open("lib/big.so") as SourceFile;
  assert.deepEqual(await a.whole!(), bytes);
  assert.equal(budget.reserve(200 << 10), false, "the dictionary is held in the budget");

  // A second job wants the same amount: it waits until the first gives its memory back.
  const two = new ObjectSource(repo.objects, index, budget);
  const b = two.open("lib/big.so") as SourceFile;
  let got: Uint8Array | undefined;
  const waiting = b.whole!().then((w) => (got = w));
  await new Promise((r) => setTimeout(r, 150));
  assert.equal(got, undefined, "still waiting for budget");
  a.close();
  one.release();
  await waiting;
  assert.deepEqual(got, bytes);
  b.close();
  two.release();
  assert.equal(budget.reserve(400 << 10), true, "everything given back");
  budget.release(400 << 10);

  // A file larger than the whole budget can never fit: a clear error, not a wait.
  const small = new ObjectSource(repo.objects, index, MemoryBudget.create(100 << 10));
  const c = small.open("lib/big.so") as SourceFile;
  await assert.rejects(
    c.whole!(),
    (e) =>
      e instanceof LimitError &&
      e.message ===
        'source file "lib/big.so" needs 300000 bytes in memory, more than the 102400-byte budget for source files',
  );
  c.close();
  small.release();
  await repo.close();
});
