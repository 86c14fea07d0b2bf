/**
 * Test helper, run as its own process (so that no other test's memory is
 * counted): reads a compressed file through `decompressor(FORMAT)` slowly,
 * pausing every 16 MiB, and prints what it read and how memory grew, as JSON:
 * `{ bytes, digest, liveGrowth, rssGrowth }`. Live memory (heap and array
 * buffers after a full GC) counts what is held; run with
 * `--v8-flags=--expose-gc`.
 *
 * Usage: deno run --allow-read --v8-flags=--expose-gc slow_reader.ts FILE FORMAT
 */
import { Hasher } from "../../src/util/digest.ts";
import { fileRangeStream } from "../../src/util/streams.ts";
import { type Compression, decompressor } from "../../src/compression/stages.ts";

const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error("run with --v8-flags=--expose-gc");
const live = () => {
  gc();
  const m = Deno.memoryUsage();
  return m.heapUsed + m.external;
};

const [file, format] = Deno.args;
const liveBefore = live();
const rssBefore = Deno.memoryUsage().rss;
let liveGrowth = 0;
let rssGrowth = 0;
const hash = new Hasher();
let next = 0;
for await (const chunk of fileRangeStream(file).pipeThrough(decompressor(format as Compression))) {
  hash.update(chunk);
  if (hash.size >= next) {
    next += 16 << 20;
    rssGrowth = Math.max(rssGrowth, Deno.memoryUsage().rss - rssBefore);
    liveGrowth = Math.max(liveGrowth, live() - liveBefore);
    await new Promise((r) => setTimeout(r, 1));
  }
}
console.log(JSON.stringify({ bytes: hash.size, digest: hash.digest(), liveGrowth, rssGrowth }));
