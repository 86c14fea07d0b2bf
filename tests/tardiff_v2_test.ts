import assert from "node:assert/strict";
import { FormatError, TarDiffError } from "../src/errors.ts";
import type { LookupFailure } from "../src/oci/rootfs.ts";
import { applyTarDiff, type SourceFile, type TarDiffSource } from "../src/tardiff/apply.ts";
import { TARDIFF_MAGIC_V2 } from "../src/tardiff/format.ts";
import { concat } from "../src/util/streams.ts";
import { MAX_DICTIONARY_SIZE, ZstdDictDecoder } from "../src/compression/zstd/dict.ts";
import { noise } from "./helpers/data.ts";
import { haveTools } from "./helpers/interop.ts";
import { encodeOps, tarDiff, type TarDiffOp } from "./helpers/tardiff.ts";
import { patchFrom, PREFIX_COPIED, PREFIX_FRAME, prefixPair, unpatch } from "./helpers/zstd_patch.ts";

const enc = new TextEncoder();

/** A source held in memory; counts the files whose whole content was asked for. */
class MemorySource implements TarDiffSource {
  wholes = 0;
  constructor(readonly files: Record<string, Uint8Array>) {}
  open(path: string): SourceFile | LookupFailure {
    const bytes = this.files[path];
    if (bytes === undefined) return "missing";
    return {
      size: bytes.length,
      read: (position, into, offset, length) => into.set(bytes.subarray(position, position + length), offset),
      whole: () => {
        this.wholes++;
        return Promise.resolve(bytes);
      },
      close() {},
    };
  }
}

/** A ZstdDict op (op 5) carrying `frame`. */
function zstdDict(frame: Uint8Array): TarDiffOp {
  return { op: 5, size: frame.length, bytes: frame };
}

function v2(ops: TarDiffOp[]): Uint8Array {
  return tarDiff(ops, TARDIFF_MAGIC_V2);
}

async function apply(
  blob: Uint8Array,
  source: TarDiffSource,
  options: { step?: number; outputSize?: number; decodeSize?: number } = {},
): Promise<Uint8Array> {
  const step = options.step ?? blob.length;
  const chunks: Uint8Array[] = [];
  for (let o = 0; o < blob.length; o += step) chunks.push(blob.slice(o, o + step));
  const parts: Uint8Array[] = [];
  for await (const chunk of applyTarDiff(ReadableStream.from(chunks), source, options)) parts.push(chunk.slice());
  return concat(parts);
}

async function rejects(blob: Uint8Array, source: TarDiffSource, message: RegExp): Promise<void> {
  const caught = await apply(blob, source).then(() => undefined, (e) => e);
  assert.ok(caught instanceof TarDiffError, `expected a TarDiffError, got ${caught}`);
  assert.match(caught.message, message);
  assert.equal(caught.message.includes("\n"), false);
}

Deno.test("ZstdDict: the prefix vector's frame matches into bytes a Copy already read: the dictionary is the whole file", async () => {
  const { old, now } = prefixPair();
  const frame = await Deno.readFile(PREFIX_FRAME);
  const source = new MemorySource({ f: old });
  const blob = v2([{ open: "f" }, { copy: PREFIX_COPIED }, zstdDict(frame), { data: "end" }]);
  assert.deepEqual(await apply(blob, source), concat([old.subarray(0, PREFIX_COPIED), now, enc.encode("end")]));
  assert.equal(source.wholes, 1);
  // A reader that took the dictionary from the position on would fail this frame.
  const d = new ZstdDictDecoder(old.subarray(PREFIX_COPIED));
  assert.throws(() => {
    d.push(frame);
    while (d.pull() !== null);
    d.finish();
  }, FormatError);
  // After the op, the position is the end of the file.
  await rejects(
    v2([{ open: "f" }, { copy: 10 }, zstdDict(frame), { copy: 1 }]),
    source,
    /^tar-diff: Copy at byte \d+ \(source "f"\): 1 bytes from position 65536 run past the end of the file/,
  );
  const again = await apply(v2([{ open: "f" }, zstdDict(frame), { seek: 5 }, { copy: 3 }]), source);
  assert.deepEqual(again, concat([now, old.subarray(5, 8)]));
});

Deno.test({
  name:
    "ZstdDict: the prefix vector is what the real zstd makes and reads; fresh --patch-from frames apply in any chunking",
  ignore: !haveTools("zstd --patch-from frames", "zstd"),
  async fn() {
    const { old, now } = prefixPair();
    assert.deepEqual(await unpatch(old, await Deno.readFile(PREFIX_FRAME)), now);
    const big = noise(300_000, 5);
    const edited = concat([big.subarray(1000, 150_000), noise(5000, 6), big.subarray(160_000), big.subarray(0, 900)]);
    for (const args of [[], ["-19"], ["--long=27", "--single-thread"]]) {
      const frame = await patchFrom(big, edited, args);
      const source = new MemorySource({ a: big, b: old });
      const blob = v2([{ open: "b" }, { copy: 7 }, { open: "a" }, { seek: 99 }, zstdDict(frame), { data: "x" }]);
      const want = concat([old.subarray(0, 7), edited, enc.encode("x")]);
      for (const options of [{}, { step: 1, outputSize: 4, decodeSize: 7 }, { step: 4093, outputSize: 65536 }]) {
        assert.deepEqual(await apply(blob, source, options), want, `${args} ${JSON.stringify(options)}`);
      }
    }
  },
});

Deno.test("ZstdDict: bytes left inside the op after the frame are skipped, as the Rust reader does", async () => {
  const { old, now } = prefixPair();
  const frame = await Deno.readFile(PREFIX_FRAME);
  const padded = concat([frame, new Uint8Array([1, 2, 3, 4, 5])]);
  const got = await apply(v2([{ open: "f" }, zstdDict(padded), { data: "!" }]), new MemorySource({ f: old }));
  assert.deepEqual(got, concat([now, enc.encode("!")]));
});

Deno.test("ZstdDict refusals name the op's offset and the Open path", async () => {
  const { old } = prefixPair();
  const frame = await Deno.readFile(PREFIX_FRAME);
  const source = new MemorySource({ f: old, other: noise(65536, 99) });
  await rejects(
    v2([{ data: "ab" }, zstdDict(frame)]),
    source,
    /^tar-diff: ZstdDict at byte 4: no source file is open$/,
  );
  // Window log 30 (exponent 20): refused on the frame header, before anything is allocated.
  const huge = new Uint8Array([0x28, 0xb5, 0x2f, 0xfd, 0x00, 20 << 3, 0x01, 0x00, 0x00]);
  await rejects(
    v2([{ open: "f" }, zstdDict(huge)]),
    source,
    /^tar-diff: ZstdDict at byte 3 \(source "f"\): zstd frame: zstd frame needs a window of 1024 MiB \(window log 30\), over the 512 MiB \(window log 29\) limit$/,
  );
  await rejects(
    v2([{ open: "f" }, zstdDict(frame.subarray(0, frame.length - 10))]),
    source,
    /^tar-diff: ZstdDict at byte 3 \(source "f"\): zstd frame: zstd frame is truncated: it ends after \d+ bytes/,
  );
  const corrupt = frame.slice();
  corrupt[corrupt.length - 200] ^= 0x40;
  await rejects(
    v2([{ open: "f" }, zstdDict(corrupt)]),
    source,
    /^tar-diff: ZstdDict at byte 3 \(source "f"\): zstd frame: /,
  );
  // The wrong source file: the checksum says so.
  await rejects(
    v2([{ open: "other" }, zstdDict(frame)]),
    source,
    /^tar-diff: ZstdDict at byte 7 \(source "other"\): zstd frame: .*(checksum mismatch|before the \d+-byte dictionary|corrupt)/,
  );
  // The op stream ends inside the op.
  const cut = concat([encodeOps([{ open: "f" }, { op: 5, size: frame.length + 100 }]), frame]);
  await rejects(
    concat([TARDIFF_MAGIC_V2, new Uint8Array(await zstdOf(cut))]),
    source,
    /^tar-diff: ZstdDict at byte 3 \(source "f"\): the op stream ends 100 bytes early \(truncated tar-diff\)$/,
  );
  // A source file over the 512 MiB dictionary limit is refused before it is read.
  const bigFile: TarDiffSource = {
    open: () => ({
      size: MAX_DICTIONARY_SIZE + 1,
      read: () => assert.fail("not read"),
      whole: () => assert.fail("not read whole"),
      close() {},
    }),
  };
  await rejects(
    v2([{ open: "big" }, zstdDict(frame)]),
    bigFile,
    /^tar-diff: ZstdDict at byte 5 \(source "big"\): the source file \(536870913 bytes\) is over the 536870912-byte limit for a dictionary$/,
  );
});

async function zstdOf(bytes: Uint8Array): Promise<Uint8Array> {
  const { zstd } = await import("./helpers/tardiff.ts");
  return zstd(bytes);
}
