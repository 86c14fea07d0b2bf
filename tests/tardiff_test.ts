import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { TarDiffError } from "../src/errors.ts";
import type { LookupFailure } from "../src/oci/rootfs.ts";
import { cleanRootedPath } from "../src/tar/path.ts";
import { applyTarDiff, type SourceFile, type TarDiffSource } from "../src/tardiff/apply.ts";
import { MAX_ADD_DATA, MAX_OPEN_NAME, TARDIFF_MAGIC, TARDIFF_MAGIC_V2 } from "../src/tardiff/format.ts";
import { concat } from "../src/util/streams.ts";
import { ZstdDecoder } from "../src/compression/zstd/decoder.ts";
import { encodeOps, opHeader, tarDiff, type TarDiffOp, zstd, zstdFrame } from "./helpers/tardiff.ts";
import { noise } from "./helpers/data.ts";

const enc = new TextEncoder();

/** A source held in memory: path → content, or "dir". */
class MemorySource implements TarDiffSource {
  opened: string[] = [];
  constructor(readonly files: Record<string, Uint8Array | string | "dir">) {}
  open(path: string): SourceFile | LookupFailure {
    this.opened.push(path);
    const f = this.files[path];
    if (f === undefined) return "missing";
    if (f === "dir") return "not a regular file";
    const bytes = typeof f === "string" ? enc.encode(f) : f;
    return {
      size: bytes.length,
      read(position, into, offset, length) {
        assert.ok(position >= 0 && position + length <= bytes.length, "read within the file");
        into.set(bytes.subarray(position, position + length), offset);
      },
      close() {},
    };
  }
}

/** Splits bytes into a stream of `step`-byte chunks. */
function streamOf(bytes: Uint8Array, step = bytes.length || 1): ReadableStream<Uint8Array> {
  const chunks: Uint8Array[] = [];
  for (let o = 0; o < bytes.length; o += step) chunks.push(bytes.slice(o, o + step));
  return ReadableStream.from(chunks);
}

async function apply(
  blob: Uint8Array,
  source: TarDiffSource,
  options: { step?: number; outputSize?: number; decodeSize?: number } = {},
): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  for await (const chunk of applyTarDiff(streamOf(blob, options.step), source, options)) parts.push(chunk.slice());
  return concat(parts);
}

async function rejects(blob: Uint8Array, source: TarDiffSource, message: RegExp): Promise<TarDiffError> {
  let caught: unknown;
  try {
    await apply(blob, source);
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof TarDiffError, `expected a TarDiffError, got ${caught}`);
  assert.match(caught.message, message);
  assert.equal(caught.message.includes("\n"), false);
  return caught;
}

/** The obvious interpreter, byte by byte, to check the fast one against. */
function reference(ops: TarDiffOp[], files: Record<string, Uint8Array>): Uint8Array {
  const out: number[] = [];
  let file: Uint8Array | undefined;
  let pos = 0;
  for (const o of ops) {
    if ("data" in o) out.push(...(typeof o.data === "string" ? enc.encode(o.data) : o.data));
    else if ("open" in o) [file, pos] = [files[cleanRootedPath(o.open as string)], 0];
    else if ("copy" in o) { for (let i = 0; i < o.copy; i++) out.push(file![pos++]); }
    else if ("add" in o) { for (const b of o.add) out.push((file![pos++] + b) & 0xff); }
    else if ("seek" in o) pos = o.seek;
  }
  return new Uint8Array(out);
}

Deno.test("tar-diff: every op, across buffer and chunk boundaries", async () => {
  const files = { "etc/app.conf": "key=old value\n", "usr/bin/tool": noise(5000, 1) };
  const ops: TarDiffOp[] = [
    { data: "header-bytes" },
    { open: "/etc//./app.conf" },
    { copy: 4 },
    { add: new Uint8Array([0, 0, 0, 0xff, 2, 250]) }, // wraps modulo 256
    { seek: 0 },
    { copy: 3 },
    { open: "usr/bin/../bin/tool" },
    { seek: 100 },
    { add: noise(3001, 2) },
    { seek: 7 },
    { copy: 1993 },
    { data: new Uint8Array(1000) },
    { copy: 0 },
    { data: "" },
  ];
  const want = reference(ops, {
    "etc/app.conf": enc.encode(files["etc/app.conf"]),
    "usr/bin/tool": files["usr/bin/tool"],
  });
  const blob = tarDiff(ops);
  for (
    const [step, outputSize, decodeSize] of [[blob.length, 1 << 20, 1 << 19], [1, 4, 1], [7, 64, 13], [3, 1024, 100]]
  ) {
    const source = new MemorySource(files);
    const got = await apply(blob, source, { step, outputSize, decodeSize });
    assert.deepEqual(got, want, `step ${step}, output ${outputSize}, decode ${decodeSize}`);
    assert.deepEqual(source.opened, ["etc/app.conf", "usr/bin/tool"]);
  }
});

Deno.test("tar-diff: random op streams match the byte-by-byte reference (SWAR add, alignment)", async () => {
  const files: Record<string, Uint8Array> = { a: noise(70000, 3), b: noise(1, 4), "c/d": noise(4099, 5) };
  const names = Object.keys(files);
  let x = 12345;
  const rand = (n: number) => {
    x = (x * 1103515245 + 12345) & 0x7fffffff;
    return x % n;
  };
  for (let round = 0; round < 40; round++) {
    const ops: TarDiffOp[] = [];
    let file: Uint8Array | undefined;
    let pos = 0;
    for (let i = 0; i < 60; i++) {
      const kind = rand(5);
      if (kind === 0 || !file) {
        const name = names[rand(names.length)];
        ops.push({ open: name });
        [file, pos] = [files[name], 0];
      } else if (kind === 1) {
        ops.push({ data: noise(rand(300), round * 100 + i) });
      } else if (kind === 2) {
        const n = rand(file.length - pos + 1);
        ops.push({ copy: n });
        pos += n;
      } else if (kind === 3) {
        const n = rand(Math.min(9000, file.length - pos + 1));
        ops.push({ add: noise(n, round * 1000 + i + 7) });
        pos += n;
      } else {
        pos = rand(file.length + 1);
        ops.push({ seek: pos });
      }
    }
    const got = await apply(tarDiff(ops), new MemorySource(files), {
      step: 1 + rand(5000),
      outputSize: 4 * (1 + rand(3000)),
      decodeSize: 1 + rand(20000),
    });
    assert.deepEqual(got, reference(ops, files), `round ${round}`);
  }
});

Deno.test("tar-diff: an AddData of 115 MB (over the 100 MiB other readers allow, as tar-diff 0.1.x writes) streams through in bounded chunks", async () => {
  // 115 MB of AddData described in a handful of RLE blocks; the source file is
  // synthetic too, so nothing in this test holds 115 MB.
  const size = 115_000_000;
  assert.ok(size > MAX_ADD_DATA);
  const blocks: Parameters<typeof zstdFrame>[0] = [
    { raw: concat([encodeOps([{ open: "big" }]), opHeader(3, size)]) },
  ];
  for (let left = size; left > 0; left -= 128 << 10) blocks.push({ rle: 1, size: Math.min(left, 128 << 10) });
  const blob = concat([TARDIFF_MAGIC, zstdFrame(blocks)]);
  const pattern = (p: number) => (p * 7 + (p >>> 11)) & 0xff;
  const source: TarDiffSource = {
    open: () => ({
      size,
      read(position, into, offset, length) {
        for (let i = 0; i < length; i++) into[offset + i] = pattern(position + i);
      },
      close() {},
    }),
  };
  const got = createHash("sha256");
  const want = createHash("sha256");
  const expected = new Uint8Array(1 << 20);
  let total = 0;
  let largest = 0;
  for await (const chunk of applyTarDiff(ReadableStream.from([blob]), source)) {
    for (let i = 0; i < chunk.length; i++) expected[i] = pattern(total + i) + 1;
    want.update(expected.subarray(0, chunk.length));
    got.update(chunk);
    total += chunk.length;
    largest = Math.max(largest, chunk.length);
  }
  assert.equal(total, size);
  assert.equal(largest, 1 << 20);
  assert.equal(got.digest("hex"), want.digest("hex"));
});

Deno.test("tar-diff: Open never leaves the source root", async () => {
  // ../../etc/passwd resolves to etc/passwd inside the source: the source's file, never the host's.
  const source = new MemorySource({ "etc/passwd": "root:x:0:0:source-image\n" });
  const got = await apply(tarDiff([{ open: "../../etc/passwd" }, { copy: 24 }]), source);
  assert.equal(new TextDecoder().decode(got), "root:x:0:0:source-image\n");
  assert.deepEqual(source.opened, ["etc/passwd"]);
  const e = await rejects(
    tarDiff([{ open: "../../etc/passwd" }, { copy: 10 }]),
    new MemorySource({}),
    /^tar-diff: Open at byte 0: "..\/..\/etc\/passwd" \(resolved to "etc\/passwd"\) is not in the source image \(missing, or deleted by a whiteout\)$/,
  );
  assert.equal(e.offset, 0);
  assert.equal(e.path, "etc/passwd");
});

Deno.test("tar-diff: bad Open paths each fail naming the path", async () => {
  const source = () => new MemorySource({ dir: "dir", file: "x" });
  await rejects(
    tarDiff([{ data: "ab" }, { open: "nope/x" }]),
    source(),
    /Open at byte 4: "nope\/x" is not in the source/,
  );
  await rejects(
    tarDiff([{ open: "dir" }]),
    source(),
    /Open at byte 0: "dir" is not a regular file in the source image/,
  );
  await rejects(tarDiff([{ open: "" }]), source(), /Open at byte 0: path "" is empty/);
  await rejects(tarDiff([{ open: "/../." }]), source(), /path "\/..\/." \(resolved to ""\) is empty/);
  await rejects(
    tarDiff([{ open: "a".repeat(MAX_OPEN_NAME + 1) }]),
    source(),
    /Open at byte 0: path of 4097 bytes is over the limit of 4096/,
  );
  // Exactly the limit is fine (and missing here).
  await rejects(tarDiff([{ open: "a".repeat(MAX_OPEN_NAME) }]), source(), /is not in the source image/);
});

Deno.test("tar-diff: out-of-range and orphan ops fail with their offset", async () => {
  const src = () => new MemorySource({ f: "0123456789" });
  await rejects(tarDiff([{ copy: 1 }]), src(), /^tar-diff: Copy at byte 0: no source file is open$/);
  await rejects(tarDiff([{ add: new Uint8Array(1) }]), src(), /AddData at byte 0: no source file is open/);
  await rejects(tarDiff([{ seek: 0 }]), src(), /Seek at byte 0: no source file is open/);
  await rejects(
    tarDiff([{ open: "f" }, { seek: 4 }, { copy: 7 }]),
    src(),
    /^tar-diff: Copy at byte 5 \(source "f"\): 7 bytes from position 4 run past the end of the file \(10 bytes\)$/,
  );
  await rejects(
    tarDiff([{ open: "f" }, { copy: 5 }, { add: new Uint8Array(6) }]),
    src(),
    /AddData at byte 5 \(source "f"\): 6 bytes from position 5 run past the end/,
  );
  await rejects(
    tarDiff([{ open: "f" }, { seek: 11 }]),
    src(),
    /Seek at byte 3 \(source "f"\): position 11 is past the end/,
  );
  // An AddData over the limit (the layer size limit, in a pull) fails on its header, before any data is read.
  const big = concat([TARDIFF_MAGIC, zstd(concat([encodeOps([{ open: "f" }]), opHeader(3, 1001)]))]);
  let caught: unknown;
  try {
    for await (const _ of applyTarDiff(ReadableStream.from([big]), src(), { maxAddData: 1000 }));
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof TarDiffError);
  assert.match(caught.message, /AddData at byte 3 \(source "f"\): 1001 bytes is over the limit of 1000$/);
});

Deno.test("tar-diff: malformed op streams", async () => {
  const src = new MemorySource({ f: "0123456789" });
  await rejects(tarDiff([{ data: "ok" }, { op: 9, size: 0 }]), src, /^tar-diff: op 9 at byte 4: unknown op 9 /);
  await rejects(
    tarDiff([{ data: "ok" }, { op: 5, size: 3 }]),
    src,
    /^tar-diff: ZstdDict at byte 4: ZstdDict \(op 5\) in a version 1 tar-diff \(tardf1\); only tardf2 may use it$/,
  );
  await rejects(tarDiff([{ data: "ok" }, { op: 6, size: 0 }]), src, /^tar-diff: op 6 at byte 4: unknown op 6 /);
  // 11-byte varint, read both on the fast path (whole header in the buffer) and byte by byte.
  await rejects(
    tarDiff([{ data: "abc" }, { raw: new Uint8Array([0, ...new Array(10).fill(0x80), 0]) }, { data: "x".repeat(99) }]),
    src,
    /^tar-diff: overlong varint \(over 10 bytes\) in the op at byte 5$/,
  );
  await rejects(
    tarDiff([{ raw: new Uint8Array([0, ...new Array(10).fill(0x80), 0]) }]),
    src,
    /^tar-diff: overlong varint \(over 10 bytes\) in the op at byte 0$/,
  );
  // A varint that needs more than 53 bits.
  await rejects(
    tarDiff([{ raw: new Uint8Array([2, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]) }]),
    src,
    /^tar-diff: the op at byte 0 has a size \(\d+\) past 2\^53$/,
  );
  // Truncated op streams: inside a header, inside Data, inside AddData, inside an Open name.
  const ops = encodeOps([{ open: "f" }, { add: new Uint8Array(5) }, { data: "abcdef" }]);
  await rejects(
    concat([TARDIFF_MAGIC, zstd(ops.subarray(0, 1))]),
    src,
    /truncated: the op at byte 0 has an incomplete header/,
  );
  await rejects(
    concat([TARDIFF_MAGIC, zstd(ops.subarray(0, ops.length - 2))]),
    src,
    /Data at byte 10 .*2 bytes early \(truncated tar-diff\)/,
  );
  await rejects(
    concat([TARDIFF_MAGIC, zstd(ops.subarray(0, 7))]),
    src,
    /AddData at byte 3 \(source "f"\): the op stream ends 3 bytes early/,
  );
  await rejects(
    concat([TARDIFF_MAGIC, zstd(ops.subarray(0, 2))]),
    src,
    /Open at byte 0: the op stream ends 1 bytes early/,
  );
});

Deno.test("tar-diff: bad magic, version 2 accepted, and broken zstd framing", async () => {
  const src = new MemorySource({ f: "x" });
  const good = tarDiff([{ data: "hello" }]);
  await rejects(concat([enc.encode("tardf0\n\0"), good.subarray(8)]), src, /not a tar-diff: wrong magic/);
  await rejects(concat([enc.encode("tardf3\n\0"), good.subarray(8)]), src, /not a tar-diff: wrong magic/);
  assert.deepEqual(await apply(concat([TARDIFF_MAGIC_V2, good.subarray(8)]), src), enc.encode("hello"));
  await rejects(good.subarray(0, 5), src, /too short to hold its magic/);
  await rejects(TARDIFF_MAGIC, src, /zstd stream is empty/);
  await rejects(good.subarray(0, good.length - 3), src, /zstd stream is truncated/);
  await rejects(concat([good, new Uint8Array([1, 2, 3, 4, 5, 6])]), src, /not zstd data: bad frame magic at byte/);
  await rejects(
    concat([TARDIFF_MAGIC, new Uint8Array(40).fill(0x61)]),
    src,
    /not zstd data: bad frame magic at byte 0/,
  );
  const corrupt = tarDiff([{ data: noise(5000, 9) }, { data: "x".repeat(3000) }]);
  corrupt[corrupt.length - 20] ^= 0x10; // the checksum (or the data) no longer matches
  await rejects(corrupt, src, /corrupt zstd data/);
  // Each also fails the same way when the stream arrives a byte at a time.
  let caught: unknown;
  try {
    await apply(good.subarray(0, good.length - 1), src, { step: 1 });
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof TarDiffError && /truncated/.test(caught.message));
});

Deno.test("zstd decoder: skippable frames, several frames, and an empty tar-diff body", async () => {
  const skippable = new Uint8Array([0x50, 0x2a, 0x4d, 0x18, 3, 0, 0, 0, 9, 9, 9]);
  const body = concat([skippable, zstd(encodeOps([{ data: "one" }])), zstd(encodeOps([{ data: "two" }]))]);
  assert.equal(
    new TextDecoder().decode(await apply(concat([TARDIFF_MAGIC, body]), new MemorySource({}), { step: 2 })),
    "onetwo",
  );
  // A frame holding no ops is a valid, empty tar-diff.
  assert.equal((await apply(tarDiff([]), new MemorySource({}))).length, 0);
  // The decoder refuses to be fed before it is drained.
  const d = new ZstdDecoder(16);
  d.push(zstd(new Uint8Array(100)));
  assert.throws(() => d.push(new Uint8Array(1)), /before the previous chunk was drained/);
  d.close();
});

Deno.test("tar-diff: errors from the delta stream itself pass through unchanged", async () => {
  const failing = new ReadableStream<Uint8Array>({
    start(c) {
      c.enqueue(tarDiff([{ data: "x" }]).subarray(0, 10));
      c.error(new TarDiffError("upstream says no"));
    },
  });
  await assert.rejects(async () => {
    for await (const _ of applyTarDiff(failing, new MemorySource({}))) { /* drain */ }
  }, /^TarDiffError: upstream says no$/);
});
