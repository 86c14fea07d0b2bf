/**
 * Test helper: a small mutation fuzzer for deltaship's binary parsers. Valid
 * inputs (a layer tar, an oci-archive, a layer record, a tar-diff) are built once;
 * each case derives its own PRNG from the run seed and its index (so any case can
 * be replayed alone), mutates one of them, and runs the parser on it. A case
 * passes when the parser succeeds (and its output is consistent) or throws; the
 * caller checks that what it threw is a DeltashipError.
 */
import zlib from "node:zlib";
import { ArchiveFiles } from "../../src/oci/archive.ts";
import { readFooter } from "../../src/repo/layer_record.ts";
import { layerEntries, layerTarChunks } from "../../src/repo/layer_reader.ts";
import { storeLayerTar } from "../../src/repo/layer_writer.ts";
import { Repository } from "../../src/repo/repository.ts";
import { TarSplitter } from "../../src/tar/splitter.ts";
import { applyTarDiff } from "../../src/tardiff/apply.ts";
import { TARDIFF_MAGIC } from "../../src/tardiff/format.ts";
import { asDiffId, sha256 } from "../../src/util/digest.ts";
import { concat } from "../../src/util/streams.ts";
import { writeVarint } from "../../src/util/varint.ts";
import { packArchive, sampleTar, writeImage } from "./oci.ts";
import { base256, buildTar, FIELDS, fixChecksum, headerBlock, paxRecords } from "./tar.ts";
import { listingTarget } from "./fuzz_listing.ts";
import { diffTar, memorySource, tarFiles, zstd } from "./tardiff.ts";
import { documentTarget } from "./fuzz_documents.ts";
import { chunkedFuzzTargets } from "./fuzz_chunked.ts";

const enc = new TextEncoder();

/** A small, fast PRNG (mulberry32): the same seed gives the same cases. */
export class Rng {
  #s: number;
  constructor(seed: number) {
    this.#s = seed >>> 0;
  }
  /** A uniform 32-bit unsigned integer. */
  u32(): number {
    let t = (this.#s = (this.#s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }
  /** An integer in [0, n). */
  int(n: number): number {
    return n <= 0 ? 0 : this.u32() % n;
  }
  /** One element of `list`. */
  pick<T>(list: readonly T[]): T {
    return list[this.int(list.length)];
  }
  /** True with probability `p`. */
  chance(p: number): boolean {
    return this.u32() / 2 ** 32 < p;
  }
}

/** The PRNG seed of one case, mixed from the run seed, the target and the case index. */
export function caseSeed(seed: number, target: string, index: number): number {
  let h = (seed ^ 0x9e3779b9) >>> 0;
  for (const c of `${target}#${index}`) h = Math.imul(h ^ c.charCodeAt(0), 0x01000193) >>> 0;
  return Math.imul(h ^ (h >>> 16), 0x85ebca6b) >>> 0;
}

// ---- mutations ----

const SPECIAL = [0x00, 0xff, 0x80, 0x7f, 0x20, 0x30, 0x37, 0x0a, 0x3d];

/** Bytes that look like numeric header fields, valid and hostile. */
function hostileField(rng: Rng, width: number): Uint8Array {
  const base256Values: (number | bigint)[] = [
    -1,
    -512,
    -1536,
    -(2 ** 40),
    0,
    5,
    2 ** 33,
    2 ** 53,
    2 ** 62,
    2n ** 63n - 1n,
  ];
  if (rng.chance(0.5)) return base256(rng.pick(base256Values), width); // wider than the field: truncated
  const texts = [
    "0x10",
    "-1",
    "+5",
    " 5 ",
    "12 34",
    "7777777777777777",
    "9",
    "",
    "0000644\0",
    "  644 \0",
    "1e2",
    "0.5",
    "\x00\x0017",
    "777\0junk",
  ];
  const out = new Uint8Array(width);
  out.set(enc.encode(rng.pick(texts)).subarray(0, width));
  return out;
}

/** PAX values that a strict parser must refuse (and a few it must take). */
const PAX_VALUES = [
  "0x10",
  "1e2",
  "0.5",
  "-1",
  " 5",
  "+5",
  "-1536",
  "99999999999999999999",
  "",
  "1.",
  ".5",
  "-1.5",
  "NaN",
  "Infinity",
  "12",
  "0",
  "a\0b",
];
const PAX_KEYS = ["size", "uid", "gid", "mtime", "atime", "ctime", "path", "linkpath", "uname", "SCHILY.xattr.user.x"];

/** Offsets of the blocks of `tar` that are header blocks (their checksum adds up). */
function headerOffsets(tar: Uint8Array): number[] {
  const out: number[] = [];
  for (let at = 0; at + 512 <= tar.length; at += 512) {
    const stored = parseInt(new TextDecoder("latin1").decode(tar.subarray(at + 148, at + 155)), 8);
    let sum = 0;
    for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 0x20 : tar[at + i];
    if (sum === stored && sum !== 256) out.push(at);
  }
  return out;
}

function splice(bytes: Uint8Array, at: number, remove: number, insert: Uint8Array): Uint8Array {
  return concat([bytes.subarray(0, at), insert, bytes.subarray(Math.min(bytes.length, at + remove))]);
}

/** A varint as a hostile encoder might write it: huge, overlong or unterminated. */
function hostileVarint(rng: Rng): Uint8Array {
  const b = new Uint8Array(16);
  switch (rng.int(5)) {
    case 0:
      return b.subarray(0, writeVarint(b, 0, rng.pick([2 ** 53 - 1, 2 ** 40, 1 << 30, 65537, 4 << 20])));
    case 1: // 2^53 and past: ten bytes
      return new Uint8Array([0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x10]);
    case 2: // 2^64 - 1
      return new Uint8Array([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
    case 3: // overlong: eleven continuation bytes
      return new Uint8Array(11).fill(0x80);
    default:
      return new Uint8Array([0x80 | rng.int(128), rng.int(256)]);
  }
}

/** One generic mutation: bit flips, special bytes, truncation, duplication, insertion, deletion. */
export function mutateBytes(rng: Rng, bytes: Uint8Array, blockSize = 512): Uint8Array {
  if (bytes.length === 0) return new Uint8Array([rng.int(256)]);
  const out = bytes.slice();
  switch (rng.int(7)) {
    case 0: // bit flips
      for (let i = 1 + rng.int(8); i > 0; i--) out[rng.int(out.length)] ^= 1 << rng.int(8);
      return out;
    case 1: // bytes set to special values
      for (let i = 1 + rng.int(4); i > 0; i--) out[rng.int(out.length)] = rng.pick(SPECIAL);
      return out;
    case 2: // truncation, often at a block boundary
      return out.subarray(
        0,
        rng.chance(0.5) ? rng.int(out.length) : Math.floor(rng.int(out.length) / blockSize) * blockSize,
      );
    case 3: { // duplicate a block (or a random range) somewhere
      const from = rng.chance(0.6) ? Math.floor(rng.int(out.length) / blockSize) * blockSize : rng.int(out.length);
      const len = Math.min(out.length - from, rng.chance(0.6) ? blockSize : 1 + rng.int(2 * blockSize));
      const to = rng.chance(0.6) ? Math.floor(rng.int(out.length) / blockSize) * blockSize : rng.int(out.length);
      return splice(out, to, 0, out.slice(from, from + len));
    }
    case 4: { // insert zeros or noise
      const len = rng.chance(0.5) ? blockSize : 1 + rng.int(64);
      const ins = rng.chance(0.5) ? new Uint8Array(len) : new Uint8Array(len).map(() => rng.int(256));
      return splice(out, rng.int(out.length + 1), 0, ins);
    }
    case 5: { // delete a range
      const at = rng.int(out.length);
      return splice(out, at, 1 + rng.int(rng.chance(0.5) ? blockSize : 16), new Uint8Array(0));
    }
    default: { // overwrite a run with noise
      const at = rng.int(out.length);
      const len = Math.min(out.length - at, 1 + rng.int(32));
      for (let i = 0; i < len; i++) out[at + i] = rng.int(256);
      return out;
    }
  }
}

/** One tar-aware mutation: a numeric field or an extended header's records replaced by hostile ones. */
function mutateTar(rng: Rng, tar: Uint8Array): Uint8Array {
  const headers = headerOffsets(tar);
  if (headers.length === 0) return mutateBytes(rng, tar);
  const at = rng.pick(headers);
  const out = tar.slice();
  const block = out.subarray(at, at + 512);
  if (rng.chance(0.6)) {
    const field = rng.pick(
      ["size", "size", "mode", "uid", "gid", "mtime", "devmajor", "devminor", "checksum"] as const,
    );
    const [offset, width] = FIELDS[field];
    block.set(hostileField(rng, width), offset);
    if (field !== "checksum" && rng.chance(0.9)) fixChecksum(block);
    return out;
  }
  // Replace the entry's headers with an 'x' header of hostile records (exact or wrong lengths).
  const records: Record<string, string> = {};
  for (let i = 1 + rng.int(3); i > 0; i--) records[rng.pick(PAX_KEYS)] = rng.pick(PAX_VALUES);
  let data = paxRecords(records);
  if (rng.chance(0.3)) {
    data = data.slice();
    const text = new TextDecoder("latin1").decode(data);
    const sp = text.indexOf(" ");
    const lengths = ["+5", "0x1f", "0", "99999", String(Number(text.slice(0, sp)) + rng.pick([-1, 1])), "-4"];
    data = concat([enc.encode(rng.pick(lengths)), data.subarray(sp)]);
  }
  const x = headerBlock({ name: "PaxHeaders/fuzz", typeflag: "x", size: data.length });
  const padded = new Uint8Array(Math.ceil(data.length / 512) * 512);
  padded.set(data);
  return splice(out, at, 0, concat([x, padded]));
}

/** The items of a valid (unmutated) layer record: where each starts, where its length varint lies, where it ends. */
function recordItems(record: Uint8Array): { at: number; varint: [number, number]; end: number }[] {
  const out = [];
  let at = 8;
  while (record[at] !== 0x45) {
    let p = at + 1;
    let n = 0;
    for (let scale = 1;; scale *= 128) {
      const b = record[p++];
      n += (b & 0x7f) * scale;
      if ((b & 0x80) === 0) break;
    }
    const tag = String.fromCharCode(record[at]);
    const end = p + (tag === "H" || tag === "R" ? n : tag === "O" ? 32 : 0);
    out.push({ at, varint: [at + 1, p] as [number, number], end });
    at = end;
  }
  return out;
}

/** One record-aware mutation: an item's length, tag or presence, or a footer total. */
function mutateRecord(rng: Rng, record: Uint8Array): Uint8Array {
  const items = recordItems(record);
  const it = rng.pick(items);
  switch (rng.int(5)) {
    case 0:
      return splice(record, it.varint[0], it.varint[1] - it.varint[0], hostileVarint(rng));
    case 1: {
      const b = new Uint8Array(10);
      const n = rng.int(1 << 20);
      return splice(record, it.varint[0], it.varint[1] - it.varint[0], b.subarray(0, writeVarint(b, 0, n)));
    }
    case 2: {
      const out = record.slice();
      out[it.at] = rng.chance(0.8) ? rng.pick([0x48, 0x52, 0x5a, 0x4f, 0x45]) : rng.int(256);
      return out;
    }
    case 3:
      return rng.chance(0.5)
        ? splice(record, it.at, it.end - it.at, new Uint8Array(0))
        : splice(record, it.end, 0, record.slice(it.at, it.end));
    default: {
      const out = record.slice();
      const view = new DataView(out.buffer, out.length - 24, 16);
      const big = [0n, 1n, 2n ** 53n, 2n ** 64n - 1n, BigInt(rng.u32()), BigInt(rng.u32()) << 20n];
      view.setBigUint64(rng.chance(0.7) ? 0 : 8, rng.pick(big), true);
      return out;
    }
  }
}

/** Applies one to three mutations, tar-aware ones with probability `tarAware`. */
function mutate(rng: Rng, input: Uint8Array, tarAware: number, blockSize = 512): Uint8Array {
  let out = input;
  for (let i = 1 + rng.int(3); i > 0; i--) {
    out = rng.chance(tarAware) ? mutateTar(rng, out) : mutateBytes(rng, out, blockSize);
  }
  return out;
}

/** Splits chunks of sizes that vary with the case. */
function chunked(rng: Rng, bytes: Uint8Array): Uint8Array[] {
  const size = rng.pick([1, 7, 100, 511, 512, 513, 4096, bytes.length || 1]);
  const out: Uint8Array[] = [];
  for (let o = 0; o < bytes.length; o += size) out.push(bytes.subarray(o, o + size));
  return out;
}

// ---- targets ----

/** One fuzz target: runs one case from its own PRNG. */
export type FuzzCase = (rng: Rng) => Promise<void>;

/**
 * Splits `tar` with a sink that allocates as the repository's does, and checks that
 * a stream the splitter accepts reached the sink whole.
 */
export async function splitChecked(chunks: Iterable<Uint8Array>, total: number): Promise<number> {
  let seen = 0;
  let entries = 0;
  let small: Uint8Array | undefined;
  const splitter = new TarSplitter({
    entry(entry, group) {
      entries++;
      seen += group.length;
      small = entry.size <= 1 << 16 ? new Uint8Array(entry.size) : undefined;
    },
    content(c) {
      small?.set(c.subarray(0, Math.min(c.length, small.length)));
      seen += c.length;
    },
    endContent() {},
    padding(b) {
      seen += b.length;
    },
    trailer(b) {
      seen += b.length;
    },
  });
  for (const c of chunks) await splitter.write(c);
  splitter.close();
  if (seen !== total) throw new Error(`splitter accounted for ${seen} of ${total} bytes`);
  return entries;
}

/** Valid tars in the formats deltaship meets: ours, GNU tar's gnu and posix, PAX globals, base-256 numbers. */
async function validTars(dir: string): Promise<Uint8Array[]> {
  const tars = [sampleTar("fuzz")];
  const global = paxRecords({ uname: "alice", mtime: "1700000000.5" });
  const g = concat([headerBlock({ name: "pax_global_header", typeflag: "g", size: global.length }), global]);
  const gPadded = concat([g, new Uint8Array(1024 - g.length)]);
  tars.push(concat([
    gPadded,
    buildTar([
      { path: "gnu/" + "n".repeat(120), content: "gnu long name", longNames: "gnu" },
      { path: "x", content: "x", pax: { "SCHILY.xattr.user.k": "v", mtime: "-1.25" } },
      { path: "l", type: "hardlink", linkname: "x" },
    ]),
  ]));
  const b256 = buildTar([{ path: "big", content: "12345" }, { path: "old", content: "" }]);
  b256.set(base256(5, 12), FIELDS.size[0]);
  fixChecksum(b256.subarray(0, 512));
  b256.set(base256(-100, 12), 1024 + FIELDS.mtime[0]);
  fixChecksum(b256.subarray(1024, 1536));
  tars.push(b256);
  await Deno.mkdir(`${dir}/tree/${"deep-directory/".repeat(8)}`, { recursive: true });
  await Deno.writeTextFile(`${dir}/tree/${"deep-directory/".repeat(8)}f`, "deep\n");
  await Deno.writeTextFile(`${dir}/tree/a`, "a".repeat(700));
  await Deno.symlink("a", `${dir}/tree/s`);
  for (const format of ["gnu", "posix"]) {
    const args = [
      ...["-C", `${dir}/tree`, `--format=${format}`, "--sort=name", "--mtime=@1700000000", "--owner=0", "--group=0"],
      ...(format === "posix" ? ["--pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime"] : []),
      ...["-cf", "-", "."],
    ];
    const out = await new Deno.Command("tar", { args, stdout: "piped", stderr: "null" }).output();
    if (out.success) tars.push(out.stdout);
  }
  return tars;
}

/** Builds every target's valid inputs under `dir` and returns the targets by name. */
export async function fuzzTargets(dir: string): Promise<Record<string, FuzzCase>> {
  const tars = await validTars(dir);
  for (const tar of tars) await splitChecked([tar], tar.length); // the valid inputs are valid

  // oci-archive: a layout with two images, packed.
  const layout = `${dir}/layout`;
  await writeImage(layout, { tag: "a", layers: [{ tar: tars[0] }, { tar: tars[1], compression: "none" }] });
  await writeImage(layout, { tag: "b", layers: [{ tar: tars[2], compression: "zstd" }] });
  const archive = `${dir}/archive.tar`;
  await packArchive(layout, archive);
  const archiveBytes = await Deno.readFile(archive);
  await ArchiveFiles.open(archive);

  // Layer records: the tars stored in a repository.
  const repo = await Repository.open(`${dir}/repo`);
  const records: Uint8Array[] = [];
  for (const tar of tars) {
    const diffId = asDiffId(sha256(tar));
    await storeLayerTar(repo, [tar], diffId, "fuzz layer");
    records.push(await Deno.readFile(repo.layerPath(diffId)));
  }
  const fakeDiffId = asDiffId(sha256(enc.encode("fuzzed record")));

  // Tar-diff: from the first tar's files to a changed version of them.
  const oldFiles = await tarFiles(tars[0]);
  const newTar = buildTar([
    { path: "etc/hostname", content: "host-fuzz\n" },
    { path: "etc/motd", content: "welcome changed\n".repeat(40) },
    { path: "usr/bin/tool", content: new Uint8Array(3000).map((_, i) => (i * 7 + 3) & 0xff), mode: 0o755 },
    { path: "new", content: "brand new\n" },
  ]);
  const delta = await diffTar(oldFiles, newTar);
  const ops: Uint8Array = new Uint8Array(zlib.zstdDecompressSync(delta.subarray(TARDIFF_MAGIC.length)));
  const source = memorySource(oldFiles);
  const document = await documentTarget(dir);
  const chunkedTargets = await chunkedFuzzTargets();

  return {
    ...chunkedTargets,
    listing: listingTarget(),
    document,
    async splitter(rng) {
      const tar = mutate(rng, rng.pick(tars), 0.5);
      await splitChecked(chunked(rng, tar), tar.length);
    },
    async archive(rng) {
      const bytes = mutate(rng, archiveBytes, 0.5);
      const path = `${dir}/case.tar`;
      await Deno.writeFile(path, bytes);
      const files = await ArchiveFiles.open(path);
      for (const [name, member] of files.members) {
        let n = 0;
        for await (const c of await files.open(name)) n += c.length;
        if (n !== member.size) throw new Error(`member ${name}: read ${n} of ${member.size} bytes`);
      }
    },
    async record(rng) {
      // A record-aware mutation of the valid record (its items can be walked), then generic ones.
      let bytes = rng.pick(records);
      const aware = rng.chance(0.6);
      if (aware) bytes = mutateRecord(rng, bytes);
      for (let i = (aware ? 0 : 1) + rng.int(3); i > 0; i--) bytes = mutateBytes(rng, bytes, 64);
      await Deno.writeFile(repo.layerPath(fakeDiffId), bytes);
      const footer = await readFooter(repo.layerPath(fakeDiffId));
      for await (const _ of layerEntries(repo, fakeDiffId)) { /* parse every header group */ }
      // Replaying is bounded by the footer's tar size, which a corrupt footer can inflate.
      if (footer.tarSize > 64 << 20) return;
      let n = 0;
      for await (const c of layerTarChunks(repo, fakeDiffId)) n += c.length;
      if (n !== footer.tarSize) throw new Error(`record replayed ${n} bytes, footer says ${footer.tarSize}`);
    },
    async tardiff(rng) {
      let blob: Uint8Array;
      if (rng.chance(0.25)) {
        blob = mutate(rng, delta, 0, 64);
      } else {
        let op: Uint8Array = ops;
        for (let i = 1 + rng.int(3); i > 0; i--) {
          op = rng.chance(0.3)
            ? splice(op, rng.int(op.length), rng.int(3), hostileVarint(rng))
            : mutateBytes(rng, op, 64);
        }
        if (rng.chance(0.1)) op = concat([op, new Uint8Array([rng.int(256)])]);
        blob = concat([TARDIFF_MAGIC, zstd(op)]);
      }
      const chunks = chunked(rng, blob);
      for await (const _ of applyTarDiff(ReadableStream.from(chunks), source, { outputSize: 4096, decodeSize: 4096 })) {
        /* drain */
      }
    },
  };
}
