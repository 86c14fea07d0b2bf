/**
 * The content index (repo/content_index.ts): made lazily for a repository's
 * layers, objects by SHA-256 and their chunks by SHA-256 with their place; a
 * torn or tampered index file is found wrong and made again; gc removes it
 * with its layer.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { runCli, tempDir } from "./helpers/cli.ts";
import { noise } from "./helpers/chunked.ts";
import { writeImage } from "./helpers/oci.ts";
import { buildTar } from "./helpers/tar.ts";
import { Repository } from "../src/repo/repository.ts";
import { contentIndex, contentIndexPath } from "../src/repo/content_index.ts";
import type { DiffId } from "../src/util/digest.ts";

const hex = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

Deno.test("content index: made on first use, by SHA-256 of files and chunks; a damaged file is made again; gc drops it", async () => {
  await using tmp = await tempDir();
  const big = noise(1 << 20, 5);
  const small = new TextEncoder().encode("hello\n");
  const image = await writeImage(`${tmp.path}/src`, {
    tag: "v1",
    layers: [{ tar: buildTar([{ path: "big.bin", content: big }, { path: "small.txt", content: small }]) }],
  });
  const root = `${tmp.path}/repo`;
  assert.equal((await runCli(["--repo", root, "-q", "pull", `oci:${tmp.path}/src:v1`, "app"])).code, 0);
  const repo = await Repository.open(root);
  try {
    const diffId = image.diffIds[0] as DiffId;
    const path = contentIndexPath(repo, diffId);
    await assert.rejects(Deno.stat(path), Deno.errors.NotFound, "not made before it is needed");
    const built: string[] = [];
    const index = await contentIndex(repo, (d) => built.push(d));
    assert.deepEqual(built, [diffId]);
    assert.equal(index.files.get(hex(big))?.size, big.length);
    assert.equal(index.files.get(hex(small))?.size, small.length);
    // Chunks tile the big file, each found by its own digest at its place.
    const chunks = [...index.chunks.values()].filter((c) => c.hex === index.files.get(hex(big))!.hex);
    assert.ok(chunks.length > 4, `${chunks.length} chunks`);
    assert.equal(chunks.reduce((n, c) => n + c.size, 0), big.length);
    for (const [sha, c] of index.chunks) {
      if (c.hex !== index.files.get(hex(big))!.hex) continue;
      assert.equal(hex(big.subarray(c.offset, c.offset + c.size)), sha);
    }
    // Read again: not made again.
    await contentIndex(repo, (d) => built.push(d));
    assert.equal(built.length, 1);
    // Torn (as a crash may leave it) or changed: made again, same answers.
    const bytes = await Deno.readFile(path);
    for (const damaged of [bytes.subarray(0, bytes.length - 7), bytes.map((b, i) => i === 40 ? b ^ 1 : b)]) {
      await Deno.writeFile(path, damaged);
      const again = await contentIndex(repo, (d) => built.push(d));
      assert.equal(again.files.get(hex(big))?.hex, index.files.get(hex(big))?.hex);
      assert.deepEqual(await Deno.readFile(path), bytes);
    }
    assert.equal(built.length, 3);
  } finally {
    await repo.close();
  }
  assert.equal((await runCli(["--repo", root, "rm", "app"])).code, 0);
  assert.equal((await runCli(["--repo", root, "gc"])).code, 0);
  await assert.rejects(
    Deno.stat(contentIndexPath({ root } as Repository, image.diffIds[0] as DiffId)),
    Deno.errors.NotFound,
  );
  assert.equal((await runCli(["--repo", root, "fsck"])).code, 0);
});
