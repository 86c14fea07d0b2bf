/**
 * The object store's staging area: objects published under their digests, the
 * same content staged once, a failed write naming its path.
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

Deno.test("objects: a commit publishes each staged object under its fs-verity digest and removes the area", async () => {
  await using tmp = await tempDir();
  const repo = await Repository.open(`${tmp.path}/repo`);
  const contents = Array.from({ length: 40 }, (_, i) => noise(100 + i * 37, i));
  const staging = await repo.objects.stage();
  const hexes = [];
  for (const c of contents) hexes.push(toHex(staging.putSmall(c)));
  assert.equal(await staging.commit(), 40);
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

Deno.test("objects: a write that fails names its path and stores nothing", async () => {
  await using tmp = await tempDir();
  const repo = await Repository.open(`${tmp.path}/repo`);
  const staging = await repo.objects.stage();
  await Deno.remove(staging.dir); // every create in the area now fails (ENOENT)
  const bytes = noise(300, 4);
  const hex = toHex(fsverityDigest(bytes));
  assert.throws(() => staging.putSmall(bytes), (e: Error) => e.message.includes(`${staging.dir}/${hex}`));
  await staging.abort();
  assert.deepEqual(
    names(repo.objects.root).flatMap((fan) => names(`${repo.objects.root}/${fan}`)),
    [],
    "nothing reached the store",
  );
});
