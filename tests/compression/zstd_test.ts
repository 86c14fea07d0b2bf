import assert from "node:assert/strict";
import zlib from "node:zlib";
import { FormatError } from "../../src/errors.ts";
import { concat } from "../../src/util/streams.ts";
import { decompressor } from "../../src/compression/stages.ts";
import { deltaship, tempDir } from "../helpers/cli.ts";
import { sampleTar, writeImage } from "../helpers/oci.ts";

const data = new Uint8Array(300_000).map((_, i) => (i * 13 + (i >> 9)) & 0xff);
const good = new Uint8Array(zlib.zstdCompressSync(data));

async function decompress(bytes: Uint8Array, step: number): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  for (let o = 0; o < bytes.length; o += step) chunks.push(bytes.slice(o, o + step));
  const out: Uint8Array[] = [];
  for await (const c of ReadableStream.from(chunks).pipeThrough(decompressor("zstd"))) out.push(c);
  return concat(out);
}

Deno.test("zstd stream: decodes in any chunking; truncation and trailing garbage are errors, not crashes", async () => {
  for (const step of [1 << 20, 4096, 7]) assert.deepEqual(await decompress(good, step), data);
  const cases: [string, Uint8Array, RegExp][] = [
    ["truncated", good.subarray(0, good.length - 4), /zstd stream is truncated/],
    [
      "garbage after the frame",
      concat([good, new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8])]),
      /not zstd data: bad frame magic/,
    ],
    ["not zstd", new Uint8Array(64).fill(7), /not zstd data: bad frame magic at byte 0/],
    ["empty", new Uint8Array(0), /zstd stream is empty/],
  ];
  for (const [what, bytes, message] of cases) {
    await assert.rejects(decompress(bytes, 1000), (e) => e instanceof FormatError && message.test(e.message), what);
  }
});

Deno.test("pull: a zstd layer with bytes after its frame fails cleanly (its digest matching)", async () => {
  await using tmp = await tempDir();
  const dir = `${tmp.path}/layout`;
  const frame = new Uint8Array(zlib.zstdCompressSync(sampleTar("z")));
  const blob = concat([frame, new TextEncoder().encode("junk after the zstd frame")]);
  // Written as is ("none"), labelled tar+zstd: the descriptor's digest is that of the bad bytes.
  await writeImage(dir, {
    tag: "bad",
    layers: [{ tar: blob, compression: "none", mediaType: "application/vnd.oci.image.layer.v1.tar+zstd" }],
  });
  const repo = `${tmp.path}/repo`;
  const r = await deltaship(repo, "pull", `oci:${dir}:bad`);
  assert.equal(r.code, 1, r.stderr);
  assert.match(
    r.stderr,
    new RegExp(`^deltaship: layer sha256:[0-9a-f]{64}: not zstd data: bad frame magic at byte ${frame.length}\n$`),
  );
  assert.equal((await deltaship(repo, "fsck")).code, 0);
  assert.deepEqual([...Deno.readDirSync(`${repo}/tmp`)], []);
});

Deno.test("zstd stream: an input error reaches the reader, and a reader that stops early stops the input", async () => {
  let sent = 0;
  const failing = new ReadableStream<Uint8Array>({
    pull(c) {
      if (sent >= 2000) return c.error(new RangeError("input broke"));
      c.enqueue(good.subarray(sent, sent + 1000));
      sent += 1000;
    },
  }, { highWaterMark: 0 });
  await assert.rejects(async () => {
    for await (const _ of failing.pipeThrough(decompressor("zstd"))) { /* drain */ }
  }, /input broke/);

  let cancelled: unknown;
  let pulled = 0;
  const input = new ReadableStream<Uint8Array>({
    pull(c) {
      c.enqueue(good.subarray(pulled, pulled + 100));
      pulled += 100;
    },
    cancel(reason) {
      cancelled = reason ?? "cancelled";
    },
  }, { highWaterMark: 0 });
  const reader = input.pipeThrough(decompressor("zstd")).getReader();
  assert.equal((await reader.read()).done, false);
  await reader.cancel(new Error("enough"));
  await new Promise((r) => setTimeout(r, 10));
  assert.ok(cancelled !== undefined, "the input was cancelled");
  assert.ok(pulled < good.length, "the input was not read to its end");
});
