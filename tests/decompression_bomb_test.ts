/**
 * Decompression bombs: a tiny zstd blob that inflates to GiBs of zeros is
 * decompressed as fast as its consumer reads, in flat memory, whatever the
 * compression ratio (unit: a slow reader; end to end: a pull's peak RSS).
 */
import assert from "node:assert/strict";
import { deltaship, tempDir } from "./helpers/cli.ts";
import { writeBombImage, zeroBomb } from "./helpers/bomb.ts";
import { measuredRun } from "./helpers/process.ts";
import { haveTools } from "./helpers/interop.ts";

const MiB = 1 << 20;

Deno.test({
  name: "zstd bomb: decompression keeps pace with a slow reader in flat memory (1 GiB of zeros from 36 KB)",
  ignore: !haveTools("zstd bomb", "zstd"),
  async fn() {
    const bomb = await zeroBomb(1 << 30);
    assert.ok(bomb.size < 64 * 1024, `a bomb: ${bomb.size} bytes`);
    const reader = new URL("./helpers/slow_reader.ts", import.meta.url).pathname;
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--quiet", "--allow-read", "--v8-flags=--expose-gc", reader, bomb.path, "zstd"],
      stderr: "inherit",
    }).output();
    assert.equal(out.code, 0);
    const r = JSON.parse(new TextDecoder().decode(out.stdout));
    assert.equal(r.bytes, bomb.fileSize + 1536);
    assert.equal(r.digest, bomb.diffId);
    // What is held stays within a few pieces; RSS also counts the pieces already read that
    // await collection (V8 frees them in steps of some tens of MiB), whatever the total.
    assert.ok(r.liveGrowth < 32 * MiB, `live memory grew by ${(r.liveGrowth / MiB).toFixed(1)} MiB`);
    assert.ok(r.rssGrowth < 128 * MiB, `RSS grew by ${(r.rssGrowth / MiB).toFixed(0)} MiB while 1 GiB was read`);
  },
});

Deno.test({
  name: "zstd bomb: pulling a layer of 1 GiB of zeros (36 KB of zstd) peaks under 300 MiB RSS",
  ignore: !haveTools("zstd bomb", "zstd"),
  async fn() {
    await using tmp = await tempDir();
    const bomb = await zeroBomb(1 << 30);
    await writeBombImage(`${tmp.path}/l`, "bomb", bomb);
    const repo = `${tmp.path}/repo`;
    const r = await measuredRun(["--repo", repo, "-j", "1", "pull", `oci:${tmp.path}/l:bomb`]);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(r.peakRss < 300 * MiB, `peak RSS ${(r.peakRss / MiB).toFixed(0)} MiB`);
    console.log(`zstd bomb pull: peak RSS ${(r.peakRss / MiB).toFixed(0)} MiB, ${r.ms.toFixed(0)} ms`);
    const info = JSON.parse((await deltaship(repo, "--json", "inspect", "bomb")).stdout);
    assert.deepEqual(
      info.layers.map((l: { diffId: string; tarSize: number }) => [l.diffId, l.tarSize]),
      [[bomb.diffId, bomb.fileSize + 1536]],
    );
    assert.equal((await deltaship(repo, "fsck")).code, 0);
  },
});
