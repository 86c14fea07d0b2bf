/**
 * The object store's staging area: the same content staged once, a failed
 * write naming its path, and fan directories made as objects come.
 */
import assert from "node:assert/strict";
import { fsverityDigest } from "../src/composefs/fsverity.ts";
import { Repository } from "../src/repo/repository.ts";
import { toHex } from "../src/util/digest.ts";
import { tempDir } from "./helpers/cli.ts";
import { noise } from "./helpers/data.ts";

/** Names in `dir` (none when it is missing). */
function names(dir: string): string[] {
  try {
    return [...Deno.readDirSync(dir)].map((e) => e.name).sort();
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return [];
    throw e;
  }
}

Deno.test("objects: a new repository has no fan directories; a commit makes those its objects need", async () => {
  await using tmp = await tempDir();
  const repo = await Repository.open(`${tmp.path}/repo`);
  assert.deepEqual(names(repo.objects.root), []);
  const contents = Array.from({ length: 40 }, (_, i) => noise(100 + i * 37, i));
  const staging = await repo.objects.stage();
  const hexes = [];
  for (const c of contents) hexes.push(toHex(staging.putSmall(c)));
  assert.equal(await staging.commit(), 40);
  const fans = [...new Set(hexes.map((h) => h.slice(0, 2)))].sort();
  assert.deepEqual(names(repo.objects.root), fans);
  for (const [i, hex] of hexes.entries()) {
    assert.equal(hex, toHex(fsverityDigest(contents[i])));
    assert.deepEqual(await Deno.readFile(repo.objects.path(hex)), contents[i]);
  }
  assert.deepEqual(names(staging.dir), [], "the staging area is gone");
});

Deno.test("objects: content staged twice in one layer, or already stored, is written once", async () => {
  await using tmp = await tempDir();
  const repo = await Repository.open(`${tmp.path}/repo`);
  const a = noise(5000, 1);
  const b = noise(7000, 2);
  const first = await repo.objects.stage();
  first.putSmall(a);
  assert.equal(await first.commit(), 1);
  const second = await repo.objects.stage();
  // b twice, a already stored, b again later.
  for (const c of [b, b, a, noise(10, 3), b]) second.putSmall(c);
  assert.equal(await second.commit(), 2);
  assert.deepEqual(await Deno.readFile(repo.objects.path(toHex(fsverityDigest(b)))), b);
});

Deno.test("objects: two layers committing into the same new fan directory at once both succeed", async () => {
  await using tmp = await tempDir();
  const repo = await Repository.open(`${tmp.path}/repo`);
  // Contents whose digests share a first byte, split between two staging areas.
  const byFan = new Map<string, Uint8Array[]>();
  for (let i = 0; !([...byFan.values()].some((l) => l.length >= 2)); i++) {
    const c = noise(64, 1000 + i);
    const fan = toHex(fsverityDigest(c)).slice(0, 2);
    byFan.set(fan, [...byFan.get(fan) ?? [], c]);
  }
  const [x, y] = [...byFan.values()].find((l) => l.length >= 2)!;
  const one = await repo.objects.stage();
  const two = await repo.objects.stage();
  one.putSmall(x);
  two.putSmall(y);
  assert.deepEqual(await Promise.all([one.commit(), two.commit()]), [1, 1]);
  assert.deepEqual(await Deno.readFile(repo.objects.path(toHex(fsverityDigest(x)))), x);
  assert.deepEqual(await Deno.readFile(repo.objects.path(toHex(fsverityDigest(y)))), y);
});

Deno.test("objects: a write that fails names its path and stores nothing", async () => {
  await using tmp = await tempDir();
  const repo = await Repository.open(`${tmp.path}/repo`);
  const staging = await repo.objects.stage();
  await Deno.remove(staging.dir); // every create in the area now fails (ENOENT)
  const bytes = noise(300, 4);
  const hex = toHex(fsverityDigest(bytes));
  assert.throws(() => staging.putSmall(bytes), (e: Error) => e.message.includes(`${staging.dir}/${hex}`));
  await staging.abort();
  assert.deepEqual(names(repo.objects.root), [], "nothing reached the store");
});
