/**
 * The zstd:chunked writer (`src/chunked/writer.ts`): the blob decompresses to
 * the exact tar, every TOC frame decodes at its offset to the bytes its
 * digests name, the skippable frames, footer and annotations are where they
 * say, the tar-split puts the tar back together, the chunk cut points are
 * containers/storage's, the bytes do not depend on how the jobs run, and layers
 * containers/storage could not take back are refused.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { UnsupportedError } from "../src/errors.ts";
import { ContentChunker } from "../src/compression/content_chunks.ts";
import { compressFrames, type FramesJob } from "../src/compression/frames.ts";
import { parseChunkedFooter } from "../src/compression/chunked_footer.ts";
import { TarSplitter } from "../src/tar/splitter.ts";
import { concat } from "../src/util/streams.ts";
import { referenceChunks } from "./helpers/chunks_reference.ts";
import {
  chunkedSampleEntries,
  chunkedSampleTar,
  noise,
  position,
  tocJson,
  unzstd,
  writeChunked,
} from "./helpers/chunked.ts";
import { buildTar, headerBlock, paxRecords } from "./helpers/tar.ts";
import { crc64 } from "./helpers/crc64.ts";

const sha = (b: Uint8Array) => `sha256:${createHash("sha256").update(b).digest("hex")}`;
const TOC_POSITION = "io.github.containers.zstd-chunked.manifest-position";
const TOC_CHECKSUM = "io.github.containers.zstd-chunked.manifest-checksum";
const TAR_SPLIT_POSITION = "io.github.containers.zstd-chunked.tarsplit-position";

/** The contents of the regular files of a tar, by name as written. */
async function tarContents(tar: Uint8Array): Promise<Map<string, Uint8Array>> {
  const files = new Map<string, Uint8Array>();
  let name = "";
  let parts: Uint8Array[] = [];
  const splitter = new TarSplitter({
    entry(e) {
      name = e.path;
      parts = [];
    },
    content(c) {
      parts.push(c.slice());
    },
    endContent() {
      files.set(name, concat(parts));
    },
    padding() {},
    trailer() {},
  });
  await splitter.write(tar);
  splitter.close();
  return files;
}

Deno.test("zstd:chunked: the blob decompresses to the exact tar; each TOC frame, decoded alone at its offset, is the bytes its digests name", async () => {
  const tar = chunkedSampleTar();
  const written = await writeChunked(tar, { piece: 70_001 });
  const { blob, annotations } = written;
  // Frames and skippable frames together: the tar itself (the diff_id is unchanged).
  assert.equal(sha(unzstd(blob)), sha(tar));
  const toc = tocJson(written);
  assert.equal(toc.version, 1);
  const contents = await tarContents(tar);
  const [tocOffset] = position(annotations, TOC_POSITION);
  let frames = 0;
  for (let i = 0; i < toc.entries.length; i++) {
    const e = toc.entries[i];
    if (e.type !== "reg" || !e.size) continue;
    const content = contents.get(e.name.replace(/\/$/, ""))!;
    assert.ok(content, `${e.name} is in the tar`);
    assert.equal(e.digest, sha(content), `${e.name}: digest`);
    // Its chunks: this entry and the chunk entries after it, or the whole file in one frame.
    const chunks = [e];
    while (toc.entries[i + chunks.length]?.type === "chunk") chunks.push(toc.entries[i + chunks.length]);
    let covered = 0;
    for (let k = 0; k < chunks.length; k++) {
      const c = chunks[k];
      const start = c.offset!;
      const end = (k + 1 < chunks.length ? chunks[k + 1].offset : e.endOffset)!;
      assert.ok(start > 0 && start < end && end <= tocOffset - 8, `${e.name} chunk ${k}: frame ${start}-${end}`);
      const bytes = unzstd(blob.subarray(start, end));
      const size: number = chunks.length > 1 ? c.chunkSize! : e.size;
      assert.equal(bytes.length, size, `${e.name} chunk ${k}: size`);
      assert.equal(c.chunkOffset ?? 0, covered, `${e.name} chunk ${k}: place in the file`);
      assert.deepEqual(bytes, content.subarray(covered, covered + size), `${e.name} chunk ${k}: content`);
      if (chunks.length > 1) {
        assert.equal(c.chunkDigest, sha(bytes), `${e.name} chunk ${k}: chunk digest`);
        assert.equal(
          c.chunkType === "zeros",
          bytes.every((b) => b === 0) && size >= 1024,
          `${e.name} chunk ${k}: type`,
        );
      }
      covered += size;
      frames++;
    }
    assert.equal(covered, e.size, `${e.name}: chunks cover the file`);
  }
  assert.ok(frames > 20, `${frames} frames checked`);
  assert.ok(toc.entries.some((e) => e.chunkType === "zeros"), "the sample has a hole");
});

Deno.test("zstd:chunked: the TOC, tar-split and footer are skippable frames where the annotations and the footer say", async () => {
  const { blob, annotations } = await writeChunked(chunkedSampleTar());
  const [tocOffset, tocLength, tocSize, type] = position(annotations, TOC_POSITION);
  const [splitOffset, splitLength, splitSize] = position(annotations, TAR_SPLIT_POSITION);
  assert.equal(type, 1);
  const skippable = (at: number, length: number) => {
    const view = new DataView(blob.buffer, blob.byteOffset + at - 8, 8);
    assert.equal(view.getUint32(0, true), 0x184d2a50, `skippable frame magic before ${at}`);
    assert.equal(view.getUint32(4, true), length, `skippable frame length before ${at}`);
  };
  skippable(tocOffset, tocLength);
  skippable(splitOffset, splitLength);
  assert.equal(splitOffset, tocOffset + tocLength + 8);
  assert.equal(blob.length, splitOffset + splitLength + 8 + 64, "the footer frame ends the blob");
  const toc = blob.subarray(tocOffset, tocOffset + tocLength);
  assert.equal(annotations[TOC_CHECKSUM], sha(toc));
  assert.equal(unzstd(toc).length, tocSize);
  const tarSplit = blob.subarray(splitOffset, splitOffset + splitLength);
  assert.equal(unzstd(tarSplit).length, splitSize);
  assert.equal(JSON.parse(new TextDecoder().decode(unzstd(toc))).tarSplitDigest, sha(tarSplit));
  // The footer, as containers/storage lays it out now: 64 bytes ending in "GNUlInUx".
  assert.deepEqual(new TextDecoder().decode(blob.subarray(blob.length - 8)), "GNUlInUx");
  assert.deepEqual(parseChunkedFooter(blob.subarray(blob.length - 72)), {
    size: 64,
    toc: { offset: tocOffset, length: tocLength, uncompressedLength: tocSize },
    manifestType: 1,
    tarSplit: { offset: splitOffset, length: splitLength, uncompressedLength: splitSize },
  });
});

Deno.test("zstd:chunked: the tar-split's segments and the files' contents, in its order, are the tar byte for byte", async () => {
  const tar = chunkedSampleTar();
  const b = await writeChunked(tar);
  const [offset, length] = position(b.annotations, TAR_SPLIT_POSITION);
  const lines = new TextDecoder().decode(unzstd(b.blob.subarray(offset, offset + length))).split("\n");
  assert.equal(lines.pop(), "", "every line ends in a newline");
  const contents = await tarContents(tar);
  const rebuilt: Uint8Array[] = [];
  lines.forEach((line, position) => {
    const e = JSON.parse(line);
    assert.equal(e.position, position);
    if (e.type === 2) rebuilt.push(new Uint8Array(Buffer.from(e.payload, "base64")));
    else {
      assert.equal(e.type, 1);
      const content = contents.get(e.name.replace(/\/$/, "")) ?? new Uint8Array(0);
      assert.equal(e.size ?? 0, content.length, `${e.name}: size`);
      assert.equal(e.payload === null, content.length === 0, `${e.name}: CRC only for content`);
      if (content.length > 0) assert.equal(Buffer.from(e.payload, "base64").toString("hex"), crc64(content), e.name);
      rebuilt.push(content);
    }
  });
  assert.equal(sha(concat(rebuilt)), sha(tar));
});

Deno.test("zstd:chunked: chunks are cut where containers/storage cuts them, whatever the pieces the content comes in", () => {
  const cases: [string, Uint8Array][] = [];
  const a = noise(600_000, 3);
  a.fill(0, 10_000, 11_024); // exactly a hole
  a.fill(0, 50_000, 51_023); // one short
  a.fill(0, 300_000, 340_000);
  cases.push(["holes inside", a]);
  const b = noise(200_000, 4);
  b.fill(0, 0, 5000);
  b.fill(0, 199_000);
  cases.push(["holes at both ends", b]);
  cases.push(["zeros only", new Uint8Array(70_000)]);
  cases.push(["a few zeros only", new Uint8Array(1000)]);
  const c = noise(300_000, 5);
  for (let i = 0; i < c.length; i += 37) c.fill(0, i, i + 5); // many short runs of zeros
  cases.push(["short runs of zeros", c]);
  const periodic = new Uint8Array((2 << 20) + 300_000);
  for (let i = 0; i < periodic.length; i++) periodic[i] = (i % 7) + 1;
  cases.push(["periodic, never cut by the checksum (so at 2 MiB)", periodic]);
  for (const [name, data] of cases) {
    const want = referenceChunks(data, 2 << 20);
    for (const piece of [1, 1000, 1023, 1024, 4096, 65536, data.length]) {
      if (piece === 1 && data.length > 400_000) continue;
      const got: { offset: number; size: number; zeros: boolean }[] = [];
      let at = 0;
      let start = 0;
      const chunker = new ContentChunker({
        bytes(d) {
          at += d.length;
        },
        endChunk() {
          got.push({ offset: start, size: at - start, zeros: false });
          start = at;
        },
        zeros(n) {
          at += n;
          got.push({ offset: start, size: n, zeros: true });
          start = at;
        },
      }, 2 << 20);
      chunker.begin();
      for (let o = 0; o < data.length; o += piece) chunker.push(data.subarray(o, o + piece));
      chunker.end();
      assert.deepEqual(got, want, `${name}, pieces of ${piece}`);
    }
  }
});

Deno.test("zstd:chunked: the same blob whatever the input pieces and however the jobs finish", async () => {
  const tar = chunkedSampleTar();
  const first = await writeChunked(tar);
  // Jobs that finish late and out of order, a deep queue, the tar in odd pieces.
  let n = 0;
  const late = (job: FramesJob) =>
    new Promise<ReturnType<typeof compressFrames>>((resolve) =>
      setTimeout(() => resolve(compressFrames(job)), (7 - (n++ % 7)) * 3)
    );
  const second = await writeChunked(tar, { piece: 4097, inFlight: 8, run: late });
  assert.equal(sha(second.blob), sha(first.blob));
  assert.deepEqual(second.annotations, first.annotations);
  const third = await writeChunked(tar, { piece: 1 << 20, inFlight: 1 });
  assert.equal(sha(third.blob), sha(first.blob));
});

Deno.test("zstd:chunked: a layer without entries, and one without an end-of-archive marker", async () => {
  for (const tar of [new Uint8Array(1024), buildTar([{ path: "f", content: "x" }]).subarray(0, 1024)]) {
    const b = await writeChunked(tar);
    assert.equal(sha(unzstd(b.blob)), sha(tar));
    const toc = tocJson(b);
    assert.equal(toc.entries === null, tar.length === 1024 && tar.every((x) => x === 0));
  }
});

Deno.test("zstd:chunked: layers containers/storage could not take back are refused, naming the entry", async () => {
  const global = paxRecords({ comment: "x" });
  const g = concat([headerBlock({ name: "pax_global_header", typeflag: "g", size: global.length }), global]);
  const cases: [string, Uint8Array, RegExp][] = [
    [
      "a PAX global header",
      concat([g, new Uint8Array(1024 - g.length), buildTar([{ path: "f", content: "x" }])]),
      /tar entry "" has type "g", which a zstd:chunked layer cannot hold/,
    ],
    [
      "a name twice",
      buildTar([{ path: "f", content: "1" }, { path: "./f", content: "2" }]),
      /more than one entry for "f"/,
    ],
    [
      "a GNU sparse file",
      buildTar([{ path: "s", content: "x", pax: { "GNU.sparse.major": "1", "GNU.sparse.minor": "0" } }]),
      /tar entry "s" is a GNU sparse file/,
    ],
    [
      "a time past 9999",
      buildTar([{ path: "t", content: "x", pax: { mtime: "253402300800" } }]),
      /tar entry "t": modification time is outside the years 0 to 9999/,
    ],
    [
      "data after the end-of-archive marker",
      concat([buildTar([{ path: "f", content: "x" }]), new Uint8Array(512).fill(1)]),
      /does not end in whole zero blocks/,
    ],
  ];
  for (const [name, tar, message] of cases) {
    await assert.rejects(writeChunked(tar), (e: Error) => {
      assert.ok(e instanceof UnsupportedError, `${name}: ${e}`);
      assert.match(e.message, /^test layer: cannot write zstd:chunked: /, name);
      assert.match(e.message, message, name);
      return true;
    });
  }
  // The entries it can hold are every other kind a layer has.
  assert.ok(chunkedSampleEntries().length > 10);
});
