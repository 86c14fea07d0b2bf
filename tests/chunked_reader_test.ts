/**
 * Reading zstd:chunked metadata that is not trusted (`chunked/annotations.ts`,
 * `compression/chunked_footer.ts`, `chunked/toc_reader.ts`, `chunked/tar_split.ts`):
 * layers told by their annotations (both name sets) and footers (the three
 * layouts containers/storage has written), TOCs read into their compact form
 * and refused for every way they can lie, tar-splits checked against their TOC.
 */
import assert from "node:assert/strict";
import zlib from "node:zlib";
import { createHash } from "node:crypto";
import { FormatError } from "../src/errors.ts";
import { checkFooterAgrees, chunkedLayout, withoutBlobAnnotations } from "../src/chunked/annotations.ts";
import { parseChunkedFooter } from "../src/compression/chunked_footer.ts";
import { parseToc, readToc, TOC_LIMITS } from "../src/chunked/toc_reader.ts";
import { checkTarSplit, readTarSplit, type TarSplitItem } from "../src/chunked/tar_split.ts";
import { tempDir } from "./helpers/cli.ts";
import { chunkedSampleTar, position, skopeoChunkedSample, tocJson, unzstd, writeChunked } from "./helpers/chunked.ts";
import { haveTools } from "./helpers/interop.ts";
import { buildTar } from "./helpers/tar.ts";

const enc = new TextEncoder();
const sha = (b: Uint8Array) => `sha256:${createHash("sha256").update(b).digest("hex")}`;
const D = (c: string) => `sha256:${c.repeat(64)}`;

/** Reads a written blob's TOC and tar-split with the reader under test. */
async function readBack(tar: Uint8Array) {
  const b = await writeChunked(tar);
  const layout = chunkedLayout(b.annotations, b.blob.length, "layer")!;
  const tocBytes = b.blob.subarray(layout.toc.offset, layout.toc.offset + layout.toc.length);
  const toc = readToc(tocBytes, layout, layout.toc.offset - 8, "layer");
  const ts = layout.tarSplit!;
  const tarSplit = b.blob.subarray(ts.offset, ts.offset + ts.length);
  const expected = { digest: toc.tarSplitDigest!, length: ts.length, uncompressedLength: ts.uncompressedLength };
  return { b, layout, toc, tocBytes, tarSplit, expected };
}

Deno.test("chunked reader: annotations, current and legacy names, and what they may not say", () => {
  const current = {
    "io.github.containers.zstd-chunked.manifest-checksum": D("a"),
    "io.github.containers.zstd-chunked.manifest-position": "1000:200:900:1",
    "io.github.containers.zstd-chunked.tarsplit-position": "1208:100:5000",
    "org.example": "kept",
  };
  assert.deepEqual(chunkedLayout(current, 2000, "l"), {
    tocDigest: D("a"),
    toc: { offset: 1000, length: 200, uncompressedLength: 900 },
    tarSplit: { offset: 1208, length: 100, uncompressedLength: 5000 },
    names: "current",
  });
  const legacy = {
    "io.containers.zstd-chunked.manifest-checksum": D("b"),
    "io.containers.zstd-chunked.manifest-position": "302:305:1014:1",
  };
  assert.deepEqual(chunkedLayout(legacy, 655, "l"), {
    tocDigest: D("b"),
    toc: { offset: 302, length: 305, uncompressedLength: 1014 },
    names: "legacy",
  });
  assert.equal(chunkedLayout({ "org.example": "x" }, 100, "l"), undefined);
  assert.equal(chunkedLayout(undefined, 100, "l"), undefined);
  assert.deepEqual(withoutBlobAnnotations({ ...current, ...legacy }), { "org.example": "kept" });
  const pos = "io.github.containers.zstd-chunked.manifest-position";
  const bad: [Record<string, string>, number, RegExp][] = [
    [{ ...current, [pos]: "1000:200:900" }, 2000, /is not 4 decimal numbers/],
    [{ ...current, [pos]: "1000:200:900:2" }, 2000, /TOC type 2/],
    [{ ...current, [pos]: "-1:200:900:1" }, 2000, /is not 4 decimal numbers/],
    [{ ...current, [pos]: "1000:0x10:900:1" }, 2000, /is not 4 decimal numbers/],
    [{ ...current, [pos]: "1900:200:900:1" }, 2000, /not inside the blob of 2000 bytes/],
    [{ ...current, [pos]: "4:200:900:1" }, 2000, /not inside the blob/],
    [{ ...current, [pos]: `1000:200:${200 << 20}:1` }, 2000, /over the limit/],
    [{ ...current, [pos]: "1150:100:900:1" }, 2000, /overlap/],
    [{ ...current, "io.github.containers.zstd-chunked.manifest-checksum": "sha256:xyz" }, 2000, /is not a digest/],
    [{ "io.github.containers.zstd-chunked.manifest-checksum": D("a") }, 2000, /manifest-position is missing/],
    [{ ...current, "io.containers.zstd-chunked.manifest-checksum": D("c") }, 2000, /disagree/],
  ];
  for (const [annotations, size, message] of bad) {
    assert.throws(() => chunkedLayout(annotations, size, "layer sha256:x"), (e: Error) => {
      assert.ok(e instanceof FormatError);
      assert.match(e.message, /^layer sha256:x: zstd:chunked annotations: /);
      assert.match(e.message, message);
      return true;
    });
  }
});

Deno.test("chunked reader: footers of all three layouts, and one that disagrees with the annotations", async () => {
  const { b, layout } = await readBack(chunkedSampleTar());
  const footer = parseChunkedFooter(b.blob.subarray(b.blob.length - 72))!;
  assert.equal(footer.size, 64);
  checkFooterAgrees(layout, footer, "l");
  // containers/storage before 1.47: 40 bytes, "GnUlInUx" (skopeo 1.9 writes it; see the interop test below).
  const old = new Uint8Array(48);
  old.set([0x50, 0x2a, 0x4d, 0x18, 40, 0, 0, 0]);
  const view = new DataView(old.buffer);
  [302, 305, 1014, 1].forEach((v, i) => view.setBigUint64(8 + i * 8, BigInt(v), true));
  old.set(enc.encode("GnUlInUx"), 40);
  assert.deepEqual(parseChunkedFooter(old), {
    size: 40,
    toc: { offset: 302, length: 305, uncompressedLength: 1014 },
    manifestType: 1,
  });
  // 1.47 to 1.49: 56 bytes, the old magic, then zeros.
  const mid = new Uint8Array(64);
  mid.set([0x50, 0x2a, 0x4d, 0x18, 56, 0, 0, 0]);
  mid.set(old.subarray(8, 48), 8);
  assert.deepEqual(parseChunkedFooter(mid), { ...parseChunkedFooter(old), size: 56 });
  assert.equal(parseChunkedFooter(new Uint8Array(72)), undefined);
  assert.equal(parseChunkedFooter(b.blob.subarray(b.blob.length - 71, b.blob.length - 1)), undefined);
  const other = { ...layout, toc: { ...layout.toc, offset: layout.toc.offset + 1 } };
  assert.throws(() => checkFooterAgrees(other, footer, "l"), /footer disagrees/);
});

Deno.test("chunked reader: a TOC read back has its files' frames and digests; a tar-split checks out against it", async () => {
  const tar = chunkedSampleTar();
  const { b, toc, tarSplit, expected } = await readBack(tar);
  const json = tocJson(b);
  assert.equal(toc.entries.length, json.entries.filter((e) => e.type !== "chunk").length);
  const big = toc.entries.find((e) => e.path === "d/big.bin")!;
  assert.equal(big.type, "reg");
  assert.ok(big.frames!.length > 5);
  let covered = 0;
  for (const f of big.frames!) {
    const bytes = unzstd(b.blob.subarray(f.offset, f.end));
    assert.equal(f.contentOffset, covered);
    assert.equal(bytes.length, f.size);
    assert.equal(sha(bytes), f.digest);
    covered += f.size;
  }
  assert.equal(covered, big.size);
  const hole = toc.entries.find((e) => e.path === "d/holey.bin")!.frames!.find((f) => f.zeros)!;
  assert.equal(hole.size, 5000);
  assert.deepEqual(toc.entries.find((e) => e.path === "d/hard"), {
    type: "hardlink",
    name: "d/hard",
    path: "d/hard",
    linkname: "d/small.txt",
    size: 0,
  });
  assert.equal(toc.entries.find((e) => e.path === "d")!.type, "dir");
  const items = [...readTarSplit(tarSplit, expected, "layer")].map((i) =>
    i.type === "segment" ? { ...i, bytes: i.bytes.slice() } : i
  );
  assert.deepEqual(checkTarSplit(toc, items, 1 << 30, "layer"), { tarSize: tar.length });
  assert.throws(() => checkTarSplit(toc, items, tar.length - 1, "layer"), /larger than/);
});

Deno.test("chunked reader: a TOC is refused for every way it can lie", () => {
  const f = (fields: Record<string, unknown>) => ({
    type: "reg",
    name: "f",
    mode: 420,
    modtime: "2024-01-01T00:00:00Z",
    ...fields,
  });
  const file = f({ size: 10, digest: D("a"), offset: 100, endOffset: 120 });
  const doc = (entries: unknown[], extra = "") => `{"version":1,"entries":${JSON.stringify(entries)}${extra}}`;
  const parse = (text: string, contentEnd = 1000) => parseToc([enc.encode(text)], contentEnd, "TOC");
  // The baseline parses.
  assert.equal(parse(doc([{ type: "dir", name: "./" }, file])).entries.length, 2);
  assert.deepEqual(parse('{"version":1,"entries":null}').entries, []);
  // Keys are read without regard to case, unknown ones skipped, as containers/storage does.
  assert.equal(
    parse('{"Version":1,"ENTRIES":[{"Type":"dir","NAME":"x","future":{"a":[1,2,{"b":null}]}}]}').entries[0].path,
    "x",
  );
  // A leading "/" is dropped, as the tar reader drops it from member names (container engines do the same).
  assert.equal(parse(doc([f({ name: "/etc/passwd" })])).entries[0].path, "etc/passwd");
  const chunk = (o: number, co: number, cs: number, extra = {}) => ({
    type: "chunk",
    name: "f",
    offset: o,
    chunkOffset: co,
    chunkSize: cs,
    chunkDigest: D("c"),
    ...extra,
  });
  const chunked = f({ size: 10, digest: D("a"), offset: 100, endOffset: 140, chunkSize: 4, chunkDigest: D("b") });
  assert.equal(parse(doc([chunked, chunk(110, 4, 6)])).entries[0].frames!.length, 2);
  const cases: [string, string][] = [
    ["version 2", '{"version":2,"entries":[]}'],
    ["no version", '{"entries":[]}'],
    ["trailing data", doc([]) + "{}"],
    ["duplicate key", '{"version":1,"version":1,"entries":[]}'],
    ["not JSON", '{"version":1,"entries":[}'],
    ["a bad escape in an unknown string", '{"version":1,"x":"\\q","entries":[]}'],
    ["deep nesting", `{"version":1,"x":${"[".repeat(40)}${"]".repeat(40)},"entries":[]}`],
    ["unknown type", doc([f({ type: "socket" })])],
    ["no type", doc([{ name: "f" }])],
    ["name with ..", doc([f({ name: "a/../../x" })])],
    ["empty name", doc([f({ name: "" })])],
    ["name too long", doc([f({ name: "a".repeat(5000) })])],
    ["a file as the root", doc([f({ name: "./" })])],
    ["the same path twice", doc([f({ name: "a" }), f({ name: "./a/" })])],
    ["content without a digest", doc([f({ size: 10, offset: 100, endOffset: 120 })])],
    ["a malformed digest", doc([f({ size: 10, digest: "sha256:abc", offset: 100, endOffset: 120 })])],
    ["a frame past the content", doc([f({ size: 10, digest: D("a"), offset: 990, endOffset: 1010 })])],
    ["an empty frame", doc([f({ size: 10, digest: D("a"), offset: 100, endOffset: 100 })])],
    ["offset 0", doc([f({ size: 10, digest: D("a"), offset: 0, endOffset: 100 })])],
    ["overlapping frames", doc([file, f({ name: "g", size: 10, digest: D("a"), offset: 110, endOffset: 130 })])],
    ["a negative size", doc([f({ size: -1 })])],
    ["a fractional size", doc([f({ size: 1.5 })])],
    ["a size past 2^53", doc([f({ size: 2 ** 60 })])],
    ["a dir with a size", doc([{ type: "dir", name: "d", size: 3 }])],
    ["frames without content", doc([{ type: "dir", name: "d", offset: 5, endOffset: 9 }])],
    ["a symlink without target", doc([{ type: "symlink", name: "s" }])],
    ["a hardlink out of the root", doc([{ type: "hardlink", name: "h", linkName: "../x" }])],
    ["a target on a file", doc([f({ linkName: "x" })])],
    ["a mode past 21 bits", doc([f({ mode: 2 ** 24 })])],
    ["a uid past 32 bits", doc([f({ uid: 2 ** 33 })])],
    ["a time that is not RFC 3339", doc([f({ modtime: "yesterday" })])],
    ["an xattr value not base64", doc([f({ xattrs: { "user.a": "%%%" } })])],
    ["a chunk first", doc([chunk(110, 4, 6)])],
    ["a chunk after a dir", doc([{ type: "dir", name: "d" }, chunk(110, 4, 6)])],
    ["a chunk of another file", doc([chunked, chunk(110, 4, 6, { name: "g" })])],
    ["a gap between chunks", doc([chunked, chunk(110, 5, 5)])],
    ["chunks short of the file", doc([chunked, chunk(110, 4, 5)])],
    ["chunk frames out of order", doc([chunked, chunk(90, 4, 6)])],
    ["a chunk without digest", doc([chunked, chunk(110, 4, 6, { chunkDigest: undefined })])],
    ["an unknown chunk type", doc([chunked, chunk(110, 4, 6, { chunkType: "sparse" })])],
    ["a bad tarSplitDigest", doc([], ',"tarSplitDigest":"md5:x"')],
  ];
  for (const [name, text] of cases) {
    assert.throws(() => parse(text), (e: Error) => e instanceof FormatError && /^TOC[: ]/.test(e.message), name);
  }
  // The entry count is bounded.
  const saved = TOC_LIMITS.entries;
  TOC_LIMITS.entries = 3;
  try {
    assert.throws(
      () => parse(doc([f({ name: "a" }), f({ name: "b" }), f({ name: "c" }), f({ name: "d" })])),
      /more than 3 entries/,
    );
  } finally {
    TOC_LIMITS.entries = saved;
  }
});

Deno.test("chunked reader: the TOC's digest, length and uncompressed length must be the annotations'", async () => {
  const { layout, tocBytes } = await readBack(buildTar([{ path: "f", content: "x" }]));
  const what = /layer: zstd:chunked TOC: /;
  assert.throws(() => readToc(tocBytes.subarray(1), layout, 10_000, "layer"), what);
  const flipped = tocBytes.slice();
  flipped[10] ^= 1;
  assert.throws(() => readToc(flipped, layout, 10_000, "layer"), /digest sha256:.* is not the sha256:/);
  const declared = (n: number) => ({ ...layout, toc: { ...layout.toc, uncompressedLength: n } });
  assert.throws(() => readToc(tocBytes, declared(layout.toc.uncompressedLength - 1), 10_000, "layer"), /more than/);
  assert.throws(() => readToc(tocBytes, declared(layout.toc.uncompressedLength + 1), 10_000, "layer"), /not the/);
  // A TOC whose JSON is fine but is not zstd: refused before it is parsed.
  const plain = enc.encode('{"version":1,"entries":null}');
  const asIs = {
    ...layout,
    tocDigest: sha(plain),
    toc: { offset: 8, length: plain.length, uncompressedLength: plain.length },
  };
  assert.throws(() => readToc(plain, asIs, 10_000, "layer"), FormatError);
  const ok = new Uint8Array(zlib.zstdCompressSync(plain));
  const good = {
    ...layout,
    tocDigest: sha(ok),
    toc: { offset: 8, length: ok.length, uncompressedLength: plain.length },
  };
  assert.deepEqual(readToc(ok, good, 10_000, "layer").entries, []);
});

Deno.test("chunked reader: a tar-split that does not match its TOC or digest is refused", async () => {
  const tar = chunkedSampleTar();
  const { toc, tarSplit, expected } = await readBack(tar);
  const items: TarSplitItem[] = [...readTarSplit(tarSplit, expected, "l")].map((i) =>
    i.type === "segment" ? { ...i, bytes: i.bytes.slice() } : i
  );
  const flipped = tarSplit.slice();
  flipped[20] ^= 1;
  assert.throws(() => [...readTarSplit(flipped, expected, "l")], /tar-split: digest .* is not the TOC's/);
  const check = (list: TarSplitItem[]) => checkTarSplit(toc, list, 1 << 30, "l");
  const fileAt = items.findIndex((i) => i.type === "file" && i.name === "d/small.txt");
  const cases: [string, TarSplitItem[], RegExp][] = [
    ["a file renamed", items.with(fileAt, { ...items[fileAt], name: "d/other" } as TarSplitItem), /names "d\/other"/],
    [
      "a size changed",
      items.with(fileAt, { ...items[fileAt], size: 3 } as TarSplitItem),
      /size 3 where its header says/,
    ],
    ["a file entry dropped", items.toSpliced(fileAt, 1), /a segment where the file of the header before was expected/],
    ["the last entries dropped", items.slice(0, fileAt - 1), /lacks \d+ of the TOC's entries/],
    ["a header dropped", items.toSpliced(fileAt - 1, 1), /without a header before it/],
    [
      "junk after the end",
      [...items, { type: "segment", bytes: new Uint8Array(512).fill(7) }],
      /after the end-of-archive/,
    ],
  ];
  for (const [name, list, message] of cases) assert.throws(() => check(list), message, name);
  // Lines out of order or of the wrong form.
  const lines = (text: string) => {
    const z = new Uint8Array(zlib.zstdCompressSync(enc.encode(text)));
    return [...readTarSplit(z, { digest: sha(z), length: z.length, uncompressedLength: enc.encode(text).length }, "l")];
  };
  assert.equal(lines('{"type":2,"payload":"AA==","position":0}\n').length, 1);
  assert.throws(() => lines('{"type":2,"payload":"AA==","position":1}\n'), /position 1/);
  assert.throws(() => lines('{"type":3,"payload":"AA==","position":0}\n'), /type 3/);
  assert.throws(() => lines('{"type":1,"name":"f","size":2,"payload":"AA==","position":0}\n'), /not 8 bytes/);
  assert.throws(() => lines('{"type":2,"payload":"!!","position":0}\n'), /not base64/);
  assert.throws(() => lines("not json\n"), /not a JSON line/);
});

Deno.test({
  name: "chunked reader: skopeo 1.9's zstd:chunked layer (legacy names, 40-byte footer) reads back",
  ignore: !haveTools("chunked reader", "skopeo"),
  async fn() {
    await using tmp = await tempDir();
    await skopeoChunkedSample(tmp.path);
    const index = JSON.parse(Deno.readTextFileSync(`${tmp.path}/skopeo/index.json`));
    const blob = (d: string) => Deno.readFileSync(`${tmp.path}/skopeo/blobs/sha256/${d.slice(7)}`);
    const layer = JSON.parse(new TextDecoder().decode(blob(index.manifests[0].digest))).layers[0];
    const bytes = blob(layer.digest);
    const layout = chunkedLayout(layer.annotations, bytes.length, "layer")!;
    assert.equal(layout.names, "legacy");
    const footer = parseChunkedFooter(bytes.subarray(bytes.length - 72))!;
    assert.equal(footer.size, 40);
    checkFooterAgrees(layout, footer, "layer");
    const toc = readToc(
      bytes.subarray(layout.toc.offset, layout.toc.offset + layout.toc.length),
      layout,
      layout.toc.offset - 8,
      "layer",
    );
    assert.equal(toc.tarSplitDigest, undefined);
    const big = toc.entries.find((e) => e.path === "d/big.bin")!;
    assert.equal(unzstd(bytes.subarray(big.frames![0].offset, big.frames![0].end)).length, big.frames![0].size);
    assert.ok(position(layer.annotations, "io.containers.zstd-chunked.manifest-position")[0] > 0);
  },
});
