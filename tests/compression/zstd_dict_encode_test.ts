import assert from "node:assert/strict";
import { concat } from "../../src/util/streams.ts";
import { patchWindowLog, zstdPatch, zstdPatchJoined } from "../../src/compression/zstd/dict_encode.ts";
import { ZstdDictDecoder } from "../../src/compression/zstd/dict.ts";
import { noise } from "../helpers/data.ts";
import { haveTools } from "../helpers/interop.ts";
import { unpatch } from "../helpers/zstd_patch.ts";

/** Decodes `frame` against `dict` with deltaship's decoder, in 1000-byte pushes. */
function decode(dict: Uint8Array, frame: Uint8Array): Uint8Array {
  const d = new ZstdDictDecoder(dict, { outSize: 4096 });
  const parts: Uint8Array[] = [];
  for (let at = 0; at < frame.length; at += 1000) {
    d.push(frame.subarray(at, at + 1000));
    for (let p = d.pull(); p !== null; p = d.pull()) parts.push(p.slice());
  }
  assert.equal(d.finish(), 0);
  return concat(parts);
}

/** Old and new file pairs of different kinds. */
function pairs(): [string, Uint8Array, Uint8Array][] {
  const big = noise(2_000_000, 11);
  const edited = big.slice();
  for (let i = 0; i < edited.length; i += 4099) edited[i] ^= 0x33;
  const moved = concat([big.subarray(1_500_000), noise(7000, 12), big.subarray(0, 1_400_000)]);
  const text = new TextEncoder().encode(
    Array.from({ length: 20000 }, (_, i) => `line ${i}: ${"abcdefghij".slice(i % 10)}\n`).join(""),
  );
  const text2 = concat([text.subarray(0, 90_000), new TextEncoder().encode("inserted\n"), text.subarray(90_050)]);
  return [
    ["sparse edits", big, edited],
    ["moved blocks and new bytes", big, moved],
    ["text with an insertion", text, text2],
    ["empty new file", big.subarray(0, 5000), new Uint8Array(0)],
    ["empty dictionary", new Uint8Array(0), noise(300_000, 13)],
    ["a run of one byte", new Uint8Array(1000), new Uint8Array(400_000).fill(7)],
    ["tiny", new Uint8Array([1, 2, 3]), new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12])],
  ];
}

Deno.test("zstd patch encoder: frames decode to NEW with deltaship's decoder at every level, and shrink what they should", () => {
  for (const [name, old, now] of pairs()) {
    for (const level of [1, 3, 9, 19]) {
      const frame = zstdPatch(old, now, { level });
      assert.deepEqual(decode(old, frame), now, `${name}, level ${level}`);
      assert.ok(frame.length <= now.length + 64, `${name}: never much larger than the file`);
    }
  }
  const [[, big, edited], [, , moved]] = pairs();
  assert.ok(zstdPatch(big, edited).length < 60_000, "sparse edits of 2 MB cost little");
  assert.ok(zstdPatch(big, moved).length < 20_000, "moved blocks are matched, new bytes sent");
});

Deno.test("zstd patch encoder: the window: by default it holds both files, at most log 29; a small one still decodes", () => {
  assert.equal(patchWindowLog(0, 0), 10);
  assert.equal(patchWindowLog(5 << 20, 3 << 20), 23);
  assert.equal(patchWindowLog(100_000_000, 95_000_000), 28);
  assert.equal(patchWindowLog(600 << 20, 1), 29);
  const [[, big, edited]] = pairs();
  const frame = zstdPatch(big, edited);
  assert.equal(frame[5] >> 3, 22 - 10, "window descriptor: log 22 for two 2 MB files");
  // A 64 KiB window over 2 MB: matches reach back 64 KiB at most; the reader's ring wraps.
  const small = zstdPatch(big, edited, { windowLog: 16 });
  assert.equal(small[5] >> 3, 6);
  assert.deepEqual(decode(big, small), edited);
  assert.throws(() => zstdPatch(big, edited, { windowLog: 30 }), RangeError);
  // The joined form reads both files from one buffer, as the tar-diff encoder holds them.
  const joined = concat([big, edited]);
  assert.deepEqual(zstdPatchJoined(joined, big.length), frame);
});

Deno.test({
  name: "zstd patch encoder: the real zstd -d --patch-from reads every frame",
  ignore: !haveTools("zstd patch frames", "zstd"),
  async fn() {
    for (const [name, old, now] of pairs()) {
      for (const options of [{ level: 3 }, { level: 19 }, { windowLog: 16 }]) {
        assert.deepEqual(await unpatch(old, zstdPatch(old, now, options)), now, `${name} ${JSON.stringify(options)}`);
      }
    }
  },
});
