/**
 * ZstdDictDecoder against frames made by the real `zstd` CLI (`--patch-from`,
 * levels, long windows, with and without checksums and content sizes), through
 * tiny and huge input chunks and a slow reader, with bounded memory; and its
 * refusals: wrong dictionary, window log 30, dictionary IDs, oversized
 * dictionaries and single segments, truncation, trailing bytes, corruption.
 * Also decodes the op-5 frames of the oci-delta-v2 `midfile` fixture.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import zlib from "node:zlib";
import { FormatError } from "../../src/errors.ts";
import { concat } from "../../src/util/streams.ts";
import { MAX_DICTIONARY_SIZE, ZstdDictDecoder, type ZstdDictDecoderOptions } from "../../src/compression/zstd/dict.ts";
import { tempDir } from "../helpers/cli.ts";
import { noise } from "../helpers/data.ts";
import { tarFiles } from "../helpers/tardiff.ts";

const MiB = 1 << 20;

/** A small xorshift PRNG, so every generated file is the same on every run. */
function prng(seed: number): (n: number) => number {
  let x = seed | 1;
  return (n) => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) % n;
  };
}

const WORDS = ["layer", "delta", "zstd", "window", "block", "tar", "image", "the", "of", "diff", "\n", "source"]
  .map((w) => new TextEncoder().encode(w + " "));

/** `size` bytes of word salad: compressible, so frames carry Huffman literals and FSE tables. */
function text(size: number, seed: number): Uint8Array {
  const rand = prng(seed);
  const out = new Uint8Array(size);
  for (let i = 0; i < size;) {
    const w = WORDS[rand(WORDS.length)];
    for (let k = 0; k < w.length && i < size; k++) out[i++] = w[k];
  }
  return out;
}

/** An old file: 4 KiB runs of noise and of text. */
function oldFile(size: number, seed: number): Uint8Array {
  const out = new Uint8Array(size);
  for (let at = 0, i = 0; at < size; at += 4096, i++) {
    const n = Math.min(4096, size - at);
    out.set(i % 2 ? text(n, seed + i) : noise(n, seed + i), at);
  }
  return out;
}

/** `old` edited in place (same size): overwritten ranges (text or noise) and ranges copied from elsewhere. */
function edited(old: Uint8Array, seed: number): Uint8Array {
  const rand = prng(seed);
  const out = old.slice();
  if (out.length <= 1) return out.map((b) => b ^ 0x5a);
  const edits = 3 + Math.floor(out.length / 16384);
  for (let e = 0; e < edits; e++) {
    const len = 1 + rand(Math.min(600, out.length));
    const at = rand(out.length - len + 1);
    const kind = rand(3);
    if (kind === 0) out.set(text(len, seed + e), at);
    else if (kind === 1) out.set(noise(len, seed + e), at);
    else {
      const from = rand(old.length - len + 1);
      out.set(old.subarray(from, from + len), at);
    }
  }
  return out;
}

function sha256(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

async function zstd(args: string[]): Promise<void> {
  const out = await new Deno.Command("zstd", { args: ["-q", "-f", ...args], stderr: "piped" }).output();
  assert.equal(out.code, 0, `zstd ${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
}

/** zstd compressing `input` given on stdin (so its size is unknown and the window is as asked). */
async function zstdStdin(args: string[], input: Uint8Array): Promise<Uint8Array> {
  const child = new Deno.Command("zstd", { args: ["-q", "-c", ...args], stdin: "piped", stdout: "piped" }).spawn();
  const w = child.stdin.getWriter();
  await w.write(input);
  await w.close();
  const out = await child.output();
  assert.equal(out.code, 0);
  return out.stdout;
}

interface Decoded {
  sha256: string;
  length: number;
  pieces: number;
  maxPiece: number;
  /** Input bytes pushed when the first output came out. */
  firstOutputAt: number;
  trailing: number;
  /** Most the process's RSS grew over its size at the start. */
  rssGrowth: number;
}

/**
 * Decodes `frame` pushed in `chunk`-byte pieces, checking each output piece is a
 * view of one buffer of at most `outSize`; `slow` waits a timer turn after each piece.
 */
async function decode(
  dictionary: Uint8Array,
  frame: Uint8Array,
  chunk: number,
  options: ZstdDictDecoderOptions & { slow?: boolean; watchRss?: boolean } = {},
): Promise<Decoded> {
  const rss0 = Deno.memoryUsage().rss;
  const d = new ZstdDictDecoder(dictionary, options);
  const hash = createHash("sha256");
  const outSize = options.outSize ?? 256 << 10;
  let length = 0, pieces = 0, maxPiece = 0, firstOutputAt = -1, rssGrowth = 0;
  let buffer: ArrayBufferLike | undefined;
  try {
    for (let at = 0; at < frame.length || at === 0; at += chunk) {
      d.push(frame.subarray(at, at + chunk));
      for (let piece = d.pull(); piece !== null; piece = d.pull()) {
        buffer ??= piece.buffer;
        assert.equal(piece.buffer, buffer, "every piece is a view of the one output buffer");
        assert.ok(piece.length <= outSize);
        if (firstOutputAt < 0) firstOutputAt = Math.min(at + chunk, frame.length);
        hash.update(piece);
        length += piece.length;
        pieces++;
        maxPiece = Math.max(maxPiece, piece.length);
        if (options.watchRss && pieces % 16 === 0) rssGrowth = Math.max(rssGrowth, Deno.memoryUsage().rss - rss0);
        if (options.slow) await new Promise((r) => setTimeout(r, 0));
      }
      if (frame.length === 0) break;
    }
    const trailing = d.finish();
    return { sha256: hash.digest("hex"), length, pieces, maxPiece, firstOutputAt, trailing, rssGrowth };
  } finally {
    d.close();
  }
}

interface Case {
  name: string;
  old: string;
  frame: string;
  newSha: string;
  newSize: number;
}

Deno.test("zstd --patch-from frames decode to NEW byte for byte, in any chunking, with bounded memory", async (t) => {
  await using tmp = await tempDir();
  const cases: Case[] = [];
  const pairs: [number, number][] = [[0, 0], [1, 1], [4096, 4096], [0, 4096], [MiB, MiB], [40 * MiB, 40 * MiB]];
  for (const [oldSize, newSize] of pairs) {
    const old = oldFile(oldSize, 7 + oldSize);
    const now = newSize === oldSize ? edited(old, 99) : oldFile(newSize, 3);
    const base = `${tmp.path}/${oldSize}-${newSize}`;
    Deno.writeFileSync(`${base}.old`, old);
    Deno.writeFileSync(`${base}.new`, now);
    const configs = [["-1"], ["-3", "-C"], ["--long=27"], ["--long=27", "--no-check"], ["-3", "--no-content-size"]];
    if (newSize <= MiB) configs.push(["-19"], ["-19", "--long=29"]);
    for (const args of configs) {
      const frame = `${base}.${args.join("")}.zst`;
      // zstd 1.5.4 aborts on an empty file with --patch-from: an empty NEW gets a plain frame.
      const dict = newSize > 0 ? [`--patch-from=${base}.old`] : [];
      await zstd([...args, ...dict, `${base}.new`, "-o", frame]);
      cases.push({
        name: `${oldSize}->${newSize} ${args.join(" ")}`,
        old: `${base}.old`,
        frame,
        newSha: sha256(now),
        newSize,
      });
    }
  }

  await t.step("whole frame, 1-byte chunks, 4099-byte chunks", async () => {
    for (const c of cases) {
      const dict = Deno.readFileSync(c.old), frame = Deno.readFileSync(c.frame);
      for (const chunk of [frame.length + 1, 1, 4099]) {
        const r = await decode(dict, frame, chunk);
        assert.equal(r.sha256, c.newSha, `${c.name}, chunks of ${chunk}`);
        assert.equal(r.length, c.newSize);
        assert.equal(r.trailing, 0);
      }
    }
  });

  await t.step("a slow reader with a 4 KiB output buffer gets the same bytes, in pieces of at most 4 KiB", async () => {
    for (const c of cases.filter((c) => c.newSize <= MiB && / -(3 -C|19)$/.test(c.name))) {
      const r = await decode(Deno.readFileSync(c.old), Deno.readFileSync(c.frame), 512, { outSize: 4096, slow: true });
      assert.equal(r.sha256, c.newSha, c.name);
      assert.ok(r.maxPiece <= 4096 && r.pieces >= Math.ceil(c.newSize / 4096), c.name);
    }
  });

  await t.step("40 MiB: output streams out early and RSS grows less than 64 MiB beyond the dictionary", async () => {
    for (const c of cases.filter((c) => c.newSize === 40 * MiB && /long=27$|no-content-size/.test(c.name))) {
      const dict = Deno.readFileSync(c.old), frame = Deno.readFileSync(c.frame);
      const r = await decode(dict, frame, 64, { watchRss: true });
      assert.equal(r.sha256, c.newSha, c.name);
      assert.ok(
        r.firstOutputAt < frame.length / 10,
        `${c.name}: first output after ${r.firstOutputAt} of ${frame.length}`,
      );
      assert.ok(r.pieces >= (40 * MiB) / (256 << 10), c.name);
      assert.ok(r.rssGrowth < 64 * MiB, `${c.name}: RSS grew ${(r.rssGrowth / MiB).toFixed(1)} MiB`);
    }
  });

  await t.step("the wrong dictionary fails with a FormatError", async () => {
    const c = cases.find((c) => c.name === `${MiB}->${MiB} -3 -C`)!;
    const frame = Deno.readFileSync(c.frame);
    await assert.rejects(
      decode(noise(MiB, 12345), frame, 65536),
      (e) => e instanceof FormatError && /checksum mismatch .* another dictionary/.test(e.message),
    );
    // A dictionary shorter than the frame's matches reach: refused at the first such match.
    await assert.rejects(
      decode(Deno.readFileSync(c.old).subarray(0, 1000), frame, 65536),
      (e) =>
        e instanceof FormatError &&
        /corrupt zstd frame: match offset \d+ reaches .* before the 1000-byte dictionary/.test(e.message),
    );
  });

  await t.step("truncated at every byte, a FormatError saying so", async () => {
    const c = cases.find((c) => c.name === "4096->4096 -3 -C")!;
    const dict = Deno.readFileSync(c.old), frame = Deno.readFileSync(c.frame);
    for (let n = 0; n < frame.length; n++) {
      await assert.rejects(
        decode(dict, frame.subarray(0, n), 97),
        (e) =>
          e instanceof FormatError &&
          /^zstd frame is (empty|truncated: it ends after \d+ bytes, inside a)/.test(e.message),
        `cut at ${n}`,
      );
    }
  });

  await t.step(
    "corrupt bytes anywhere: a FormatError, or (a don't-care bit) the right output, never wrong bytes",
    async () => {
      for (const name of ["4096->4096 -3 -C", "4096->4096 -19", `${MiB}->${MiB} -19`]) {
        const c = cases.find((c) => c.name === name)!;
        const dict = Deno.readFileSync(c.old), frame = Deno.readFileSync(c.frame);
        const rand = prng(frame.length);
        const positions = frame.length <= 3000
          ? [...frame.keys()]
          : Array.from({ length: 300 }, () => rand(frame.length));
        let refused = 0;
        for (const at of positions) {
          const bad = frame.slice();
          bad[at] ^= 1 << rand(8);
          try {
            const r = await decode(dict, bad, 1 << 20);
            assert.equal(r.sha256, c.newSha, `${name}: bit flip at ${at} gave wrong output`);
          } catch (e) {
            if (!(e instanceof FormatError)) throw new Error(`${name}: bit flip at ${at}: ${e}`, { cause: e });
            refused++;
          }
        }
        assert.ok(refused >= positions.length * 0.9, `${name}: only ${refused} of ${positions.length} flips refused`);
      }
    },
  );
});

Deno.test("zstd dict decoder: bytes after the frame are refused, or counted with allowTrailing", async () => {
  const dict = oldFile(8192, 1);
  const frame = await zstdStdin([], edited(dict, 2)); // no dictionary references: any dictionary decodes it
  const junk = concat([frame, new Uint8Array([1, 2, 3, 4, 5])]);
  for (const chunk of [junk.length, 1, frame.length]) {
    await assert.rejects(
      decode(dict, junk, chunk),
      (e) => e instanceof FormatError && /unexpected bytes after the end of the zstd frame/.test(e.message),
    );
    const r = await decode(dict, junk, chunk, { allowTrailing: true });
    assert.equal(r.sha256, sha256(edited(dict, 2)));
    assert.equal(r.trailing, 5);
  }
});

/** Every .ts file under `dir`, in name order: real text, for what word salad does not make zstd use. */
function sources(dir: string): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (const e of [...Deno.readDirSync(dir)].sort((x, y) => x.name < y.name ? -1 : 1)) {
    const p = `${dir}/${e.name}`;
    if (e.isDirectory) out.push(...sources(p));
    else if (p.endsWith(".ts")) out.push(Deno.readFileSync(p));
  }
  return out;
}

Deno.test("zstd dict decoder: a frame without a dictionary decodes with an empty one, across ring wraps", async () => {
  await using tmp = await tempDir();
  // Source text, noise and machine code: at level 19 these make zstd use every sequence
  // and literal mode, including the rare "repeat offset 1 minus one" code.
  const binary = await Deno.open(Deno.execPath());
  const code = new Uint8Array(MiB);
  await binary.read(code).finally(() => binary.close());
  const data = concat([...sources(new URL("../../src", import.meta.url).pathname), noise(300_000, 6), code]);
  Deno.writeFileSync(`${tmp.path}/d`, data);
  // A 128 or 256 KiB window over megabytes: history wraps around the ring many times.
  for (
    const args of [["-1", "--zstd=wlog=17"], ["-19", "--zstd=wlog=17"], ["-3", "--no-content-size", "--zstd=wlog=18"]]
  ) {
    await zstd([...args, `${tmp.path}/d`, "-o", `${tmp.path}/d.zst`]);
    for (const chunk of [1 << 20, 333]) {
      const r = await decode(new Uint8Array(0), Deno.readFileSync(`${tmp.path}/d.zst`), chunk);
      assert.equal(r.sha256, sha256(data), args.join(" "));
    }
  }
});

Deno.test("zstd dict decoder: window log 29 is accepted, window log 30 refused", async () => {
  const data = text(100_000, 9);
  // From stdin the size is unknown, so zstd keeps the window --long asks for.
  const w29 = await zstdStdin(["--long=29"], data);
  assert.equal(w29[5] >> 3, 29 - 10, "window descriptor exponent of a 512 MiB window");
  assert.equal((await decode(new Uint8Array(0), w29, 4096)).sha256, sha256(data));
  const w30 = await zstdStdin(["--long=30"], data);
  await assert.rejects(
    decode(new Uint8Array(0), w30, 4096),
    (e) =>
      e instanceof FormatError &&
      /needs a window of 1024 MiB \(window log 30\), over the 512 MiB \(window log 29\) limit/.test(e.message),
  );
});

Deno.test("zstd dict decoder: dictionary IDs, oversized single segments and dictionaries are refused", async () => {
  const frame = (...bytes: number[]) => new Uint8Array([0x28, 0xb5, 0x2f, 0xfd, ...bytes, 1, 0, 0]);
  // Descriptor 0x01: window descriptor, 1-byte dictionary ID.
  await assert.rejects(
    decode(new Uint8Array(0), frame(0x01, 0x00, 7), 100),
    (e) => e instanceof FormatError && /names dictionary ID 7; only raw-content dictionaries \(ID 0\)/.test(e.message),
  );
  // A dictionary ID field holding 0 is no dictionary ID: an empty raw block decodes to nothing.
  assert.equal((await decode(new Uint8Array(0), frame(0x01, 0x00, 0), 100)).length, 0);
  // Descriptor 0xe0: single segment, 8-byte content size of 600 MiB.
  const size = 600 * MiB;
  await assert.rejects(
    decode(
      new Uint8Array(0),
      frame(0xe0, size & 0xff, (size >> 8) & 0xff, (size >> 16) & 0xff, size >>> 24, 0, 0, 0, 0),
      100,
    ),
    (e) =>
      e instanceof FormatError && /single segment of 600 MiB, over the 512 MiB \(window log 29\) limit/.test(e.message),
  );
  assert.throws(
    () => new ZstdDictDecoder(new Uint8Array(MAX_DICTIONARY_SIZE + 1)),
    (e) => e instanceof FormatError && /zstd dictionary of 536870913 bytes is over the 512 MiB limit/.test(e.message),
  );
  await assert.rejects(
    decode(new Uint8Array(0), new TextEncoder().encode("not a zstd frame at all"), 100),
    (e) => e instanceof FormatError && /not a zstd frame \(bad magic number\)/.test(e.message),
  );
});

/** A frame of one compressed block; `header` is the descriptor and what follows it. */
function handmade(header: number[], block: number[]): Uint8Array {
  const v = 1 | (2 << 1) | (block.length << 3);
  return new Uint8Array([0x28, 0xb5, 0x2f, 0xfd, ...header, v & 0xff, (v >> 8) & 0xff, v >> 16, ...block]);
}

Deno.test("zstd dict decoder: bit streams must be consumed exactly, content sizes and Huffman trees must hold", async () => {
  const enc = new TextEncoder(), dec = new TextDecoder();
  const run = (frame: Uint8Array) =>
    Promise.resolve().then(() => {
      const d = new ZstdDictDecoder(new Uint8Array(0));
      d.push(frame);
      const out: Uint8Array[] = [];
      for (let p = d.pull(); p !== null; p = d.pull()) out.push(p.slice());
      d.finish();
      return concat(out);
    });
  const refused = (frame: Uint8Array, message: RegExp) =>
    assert.rejects(run(frame), (e) => e instanceof FormatError && message.test(e.message), String(message));
  // Raw literals "abcd"; one sequence, all three tables RLE (literal length code 4, offset
  // code 0 = repeat offset 1, match length code 0 = 3 bytes): "abcd" + "ddd". The sequence
  // bit stream holds no bits, only its end marker.
  const sequence = (stream: number) => [0x20, ...enc.encode("abcd"), 1, 0x54, 4, 0, 0, stream];
  const window1k = [0x00, 0x00];
  assert.equal(dec.decode(await run(handmade(window1k, sequence(0x01)))), "abcdddd");
  await refused(handmade(window1k, sequence(0x02)), /sequences bit stream has bits left over/);
  // Single segment, 1-byte content size: 7 is right; 8 and 6 are not.
  assert.equal((await run(handmade([0x20, 7], sequence(0x01)))).length, 7);
  await refused(handmade([0x20, 8], sequence(0x01)), /decodes to 7 bytes, but its header says 8/);
  await refused(handmade([0x20, 6], sequence(0x01)), /block decodes to more than it may/);
  // Huffman literals, one stream: weights given directly (header 0x80: one weight, symbol 0
  // weight 1, symbol 1 implied weight 1), 1-bit codes; literals 0 1 1 0 under the end marker.
  const huffman = (weights: number, stream: number) => [0x42, 0xc0, 0x00, 0x80, weights, stream, 0];
  assert.deepEqual([...await run(handmade(window1k, huffman(0x10, 0b1_0110)))], [0, 1, 1, 0]);
  await refused(handmade(window1k, huffman(0x10, 0b10_1100)), /Huffman stream has bits left after its literals/);
  // Symbol 0 of weight 2 and an implied weight 2: no weight-1 literal, not a tree zstd allows.
  await refused(handmade(window1k, huffman(0x20, 0b1_0110)), /Huffman weights do not complete a tree/);
});

/** Reads an unsigned LEB128 varint at `at`: [value, position after it]. */
function varint(b: Uint8Array, at: number): [number, number] {
  let v = 0;
  for (let shift = 1;; shift *= 128) {
    const byte = b[at++];
    v += (byte & 0x7f) * shift;
    if (byte < 0x80) return [v, at];
  }
}

Deno.test("oci-delta-v2 midfile: op 5 frames decode with the whole source file, from offset 0, as dictionary", async () => {
  const shared = new URL("../../testdata/oci-delta-v2/midfile/", import.meta.url).pathname;
  const blobs = (image: string) => `${shared}${image}/blobs/sha256/`;
  const manifest = (image: string) => {
    const index = JSON.parse(Deno.readTextFileSync(`${shared}${image}/index.json`));
    return JSON.parse(Deno.readTextFileSync(`${blobs(image)}${index.manifests[0].digest.slice(7)}`));
  };
  const oldLayers = manifest("old").layers.map((l: { digest: string }) =>
    new Uint8Array(zlib.gunzipSync(Deno.readFileSync(`${blobs("old")}${l.digest.slice(7)}`)))
  );
  const source = await tarFiles(...oldLayers);
  const delta = manifest("delta").layers.map((l: { digest: string }) =>
    Deno.readFileSync(`${blobs("delta")}${l.digest.slice(7)}`)
  );
  const tardiff = delta.find((b: Uint8Array) => new TextDecoder().decode(b.subarray(0, 8)) === "tardf2\n\0");
  assert.ok(tardiff, "the fixture has a version 2 tar-diff");
  const ops = new Uint8Array(zlib.zstdDecompressSync(tardiff.subarray(8)));

  // A small tar-diff interpreter: Data, Open, Copy, Seek, ZstdDict.
  const out: Uint8Array[] = [];
  let file: Uint8Array | undefined, pos = 0, zstdOps = 0, midfileOps = 0;
  for (let at = 0; at < ops.length;) {
    const op = ops[at];
    const [size, next] = varint(ops, at + 1);
    at = next;
    if (op === 0) out.push(ops.subarray(at, at += size));
    else if (op === 1) (file = source.get(new TextDecoder().decode(ops.subarray(at, at += size)))), (pos = 0);
    else if (op === 2) out.push(file!.subarray(pos, pos += size));
    else if (op === 4) pos = size;
    else if (op === 5) {
      assert.ok(file, "op 5 needs an open file");
      if (pos > 0) midfileOps++;
      const frame = ops.subarray(at, at += size);
      // The whole file is the dictionary, whatever the position; the bytes read so far are not.
      // (Offsets count back from the dictionary's end, and this fixture's matches never reach its
      // first 512 bytes, so `file.subarray(pos)` would decode it too.)
      if (pos > 0) await assert.rejects(decode(file.subarray(0, pos), frame, 100), FormatError);
      const d = new ZstdDictDecoder(file);
      d.push(frame);
      for (let p = d.pull(); p !== null; p = d.pull()) out.push(p.slice());
      assert.equal(d.finish(), 0);
      zstdOps++;
      pos = file.length;
    } else assert.fail(`op ${op} is not used by this fixture`);
  }
  assert.ok(zstdOps >= 1 && midfileOps >= 1, `${zstdOps} op-5 frames, ${midfileOps} after a Copy`);
  const expected = JSON.parse(Deno.readTextFileSync(`${shared}expected.json`));
  assert.equal(`sha256:${sha256(concat(out))}`, expected.diff_ids[0]);
});
