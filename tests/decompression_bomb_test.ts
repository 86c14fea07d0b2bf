/**
 * Decompression bombs: a tiny zstd blob that inflates to GiBs of zeros is
 * decompressed as fast as its consumer reads, in flat memory, whatever the
 * compression ratio (unit: a slow reader; end to end: a pull's peak RSS).
 */
import assert from "node:assert/strict";
import { Hasher } from "../src/util/digest.ts";
import { decompressor, fileRangeStream } from "../src/util/streams.ts";
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
    const before = Deno.memoryUsage().rss;
    let peak = before;
    const hash = new Hasher();
    let n = 0;
    let next = 0;
    for await (const chunk of fileRangeStream(bomb.path).pipeThrough(decompressor("zstd"))) {
      hash.update(chunk);
      n += chunk.length;
      if (n >= next) {
        // A slow consumer: it pauses every 16 MiB.
        peak = Math.max(peak, Deno.memoryUsage().rss);
        next += 16 * MiB;
        await new Promise((r) => setTimeout(r, 1));
      }
    }
    assert.equal(n, bomb.fileSize + 1536);
    assert.equal(hash.digest(), bomb.diffId);
    // Flat: the 128 KiB pieces read become garbage that V8 collects in steps of
    // some tens of MiB, whatever the total; holding the output would take 1 GiB.
    const growth = peak - before;
    assert.ok(growth < 128 * MiB, `RSS grew by ${(growth / MiB).toFixed(0)} MiB while 1 GiB was read`);
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
    const layer = await deltaship(repo, "--json", "images");
    assert.equal(layer.code, 0);
    assert.equal((await deltaship(repo, "fsck")).code, 0);
  },
});
