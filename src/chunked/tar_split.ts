/**
 * tar-split (github.com/vbatts/tar-split, `tar/storage` and `tar/asm`): the
 * bytes of a tar stream other than file contents, so that the exact stream can
 * be put back together from the files. A zstd:chunked blob carries it in a
 * skippable frame. It is JSON lines, one entry each:
 *
 * - `{"type":2,"payload":BASE64,"position":N}`: raw bytes (a segment): each
 *   entry's header group with the padding of the file before it, and at the
 *   end the end-of-archive blocks and whatever follows them;
 * - `{"type":1,"name":NAME,"size":N,"payload":BASE64,"position":N}`: a file of
 *   the stream, its content left out, with the CRC-64/ISO of the content
 *   (`null` when empty); a name that is not UTF-8 goes in `name_raw`
 *   (base64) instead.
 *
 * Positions count from 0; `size` and `name` are left out when empty. This
 * module writes it as containers/storage does (through tar-split's packer),
 * and reads and checks one against its TOC.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { FormatError, UnsupportedError } from "../errors.ts";
import { isZeroBlock, padded, type TarEntry } from "../tar/header.ts";
import { parseHeaderGroup } from "../tar/header_group.ts";
import { cleanEntryPath } from "../tar/path.ts";
import { Crc64 } from "../util/crc64.ts";
import { type Digest, Hasher, parseDigest } from "../util/digest.ts";
import { concat } from "../util/streams.ts";
import { zstdPieces } from "../compression/zstd/decoder.ts";
import { goBase64, goBytesString, isValidUtf8 } from "./go_json.ts";
import type { TocType } from "./toc.ts";
import type { ChunkedToc } from "./toc_reader.ts";

/** Trailing bytes past the end-of-archive blocks go in segments of at most this (as tar-split reads them). */
const TRAILING_SEGMENT = 1 << 20;
/** The end-of-archive marker: two zero blocks. */
const END_MARKER = 1024;

/**
 * Writes the tar-split of a tar stream from its parts, in the order a
 * {@link TarSplitter} gives them, as lines of text to `out`.
 */
export class TarSplitWriter {
  #position = 0;
  /** Padding after the last file, which opens the next segment. */
  #padding: Uint8Array[] = [];
  /** The current file: its name and size, and the CRC of its content so far. */
  #file: { name: Uint8Array; size: number; crc: Crc64 } | undefined;
  /** End-of-archive bytes: the segment that closes the entries, then the rest. */
  #end: Uint8Array[] = [];
  #endLength = 0;
  #trailing: Uint8Array[] = [];
  #trailingLength = 0;
  #trailerOk = true;

  constructor(readonly out: (text: string) => void) {}

  /** A new entry: its header group, and its name (as Go reads it) and content size. */
  entry(group: Uint8Array, name: Uint8Array, size: number): void {
    this.#segment(concat([...this.#padding, group]));
    this.#padding = [];
    const file = { name: name.slice(), size, crc: new Crc64() };
    if (size === 0) this.#fileLine(file);
    else this.#file = file;
  }

  /** A piece of the current entry's content. */
  content(chunk: Uint8Array): void {
    this.#file!.crc.update(chunk);
  }

  /** The current entry's content is complete. */
  endContent(): void {
    if (this.#file) this.#fileLine(this.#file);
    this.#file = undefined;
  }

  /** Padding after a file's content. */
  padding(bytes: Uint8Array): void {
    this.#padding.push(bytes.slice());
  }

  /** Bytes from the end-of-archive marker on. */
  trailer(bytes: Uint8Array): void {
    if (!isZeroBlock(bytes)) this.#trailerOk = false;
    let at = 0;
    if (this.#endLength < END_MARKER) {
      at = Math.min(bytes.length, END_MARKER - this.#endLength);
      this.#end.push(bytes.slice(0, at));
      this.#endLength += at;
    }
    while (at < bytes.length) {
      const n = Math.min(bytes.length - at, TRAILING_SEGMENT - this.#trailingLength);
      this.#trailing.push(bytes.slice(at, at + n));
      this.#trailingLength += n;
      at += n;
      if (this.#trailingLength === TRAILING_SEGMENT) this.#flushTrailing();
    }
  }

  /**
   * The end of the stream. The tar must end in zero blocks only, as Go's
   * reader needs to take the tar-split's last segments back (`IterateHeaders`
   * parses each one as a header): anything else is refused.
   */
  finish(): void {
    const total = this.#endLength + this.#trailingLength;
    if (!this.#trailerOk || total % 512 !== 0) {
      throw new UnsupportedError(
        `the tar does not end in whole zero blocks after its end-of-archive marker, which a zstd:chunked layer ` +
          `cannot hold (containers/storage's tar-split reader would refuse it)`,
      );
    }
    this.#segment(concat([...this.#padding, ...this.#end]));
    this.#flushTrailing();
  }

  #flushTrailing(): void {
    this.#segment(concat(this.#trailing));
    this.#trailing = [];
    this.#trailingLength = 0;
  }

  #segment(bytes: Uint8Array): void {
    if (bytes.length === 0) return;
    this.out(`{"type":2,"payload":${goBase64(bytes)},"position":${this.#position++}}\n`);
  }

  #fileLine(file: { name: Uint8Array; size: number; crc: Crc64 }): void {
    let line = '{"type":1';
    if (file.name.length > 0) {
      line += isValidUtf8(file.name) ? `,"name":${goBytesString(file.name)}` : `,"name_raw":${goBase64(file.name)}`;
    }
    if (file.size !== 0) line += `,"size":${file.size}`;
    line += `,"payload":${file.size > 0 ? goBase64(file.crc.sum()) : "null"},"position":${this.#position++}}\n`;
    this.out(line);
  }
}

/** One entry of a tar-split, as read. */
export type TarSplitItem =
  /** Raw bytes of the tar stream. */
  | { type: "segment"; bytes: Uint8Array }
  /** A file whose content goes here: its name as tar-split gives it, its size and CRC-64 (when not empty). */
  | { type: "file"; name: string; size: number; crc?: Uint8Array };

/** Limits on a tar-split being read. */
export const TAR_SPLIT_LIMITS = {
  /** One line: a segment holds at most a header group (4 MiB) and its padding, in base64. */
  line: 8 << 20,
};

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;
const latin1 = new TextDecoder("latin1");
const utf8 = new TextDecoder("utf-8", { fatal: true });

/**
 * The entries of a tar-split, read from its compressed bytes as they
 * decompress: `compressed` checked against `digest` (the TOC's
 * `tarSplitDigest`) and `length` and `uncompressedLength` (the annotation's
 * position) first. Each line is checked for its form and its position; a
 * FormatError names `what`. Segments are views, valid until the next entry.
 */
export function* readTarSplit(
  compressed: Uint8Array,
  expected: { digest: Digest; length: number; uncompressedLength: number },
  what: string,
): Generator<TarSplitItem> {
  const label = `${what}: tar-split`;
  if (compressed.length !== expected.length) {
    throw new FormatError(`${label}: ${compressed.length} bytes, not the ${expected.length} announced`);
  }
  const hasher = new Hasher(parseDigest(expected.digest).algorithm);
  hasher.update(compressed);
  const actual = hasher.digest();
  if (actual !== expected.digest) {
    throw new FormatError(`${label}: digest ${actual} is not the TOC's ${expected.digest}`);
  }
  let position = 0;
  for (const line of lines(zstdPieces(compressed, expected.uncompressedLength, label), label)) {
    yield parseLine(line, position++, label);
  }
}

/** The lines of a document given in pieces (without their newlines; the last one may lack it). */
function* lines(pieces: Iterable<Uint8Array>, what: string): Generator<Uint8Array> {
  let partial: Uint8Array[] = [];
  let partialLength = 0;
  for (const piece of pieces) {
    let at = 0;
    for (let nl = piece.indexOf(0x0a); nl >= 0; nl = piece.indexOf(0x0a, at)) {
      if (partialLength + nl - at > TAR_SPLIT_LIMITS.line) throw new FormatError(`${what}: a line over the limit`);
      const rest = piece.subarray(at, nl);
      yield partialLength > 0 ? concat([...partial, rest]) : rest;
      partial = [];
      partialLength = 0;
      at = nl + 1;
    }
    if (at < piece.length) {
      partialLength += piece.length - at;
      if (partialLength > TAR_SPLIT_LIMITS.line) throw new FormatError(`${what}: a line over the limit`);
      partial.push(piece.slice(at));
    }
  }
  if (partialLength > 0) yield concat(partial);
}

function parseLine(line: Uint8Array, position: number, what: string): TarSplitItem {
  const bad = (detail: string): never => {
    throw new FormatError(`${what}: entry ${position}: ${detail}`);
  };
  let v: Record<string, unknown>;
  try {
    v = JSON.parse(utf8.decode(line));
  } catch {
    return bad("not a JSON line");
  }
  if (typeof v !== "object" || v === null || Array.isArray(v)) bad("not an object");
  if (v.position !== position) bad(`position ${JSON.stringify(v.position)}`);
  const bytes = (field: string, b64: unknown): Uint8Array => {
    if (typeof b64 !== "string" || !BASE64.test(b64) || b64.length % 4 !== 0) bad(`${field} is not base64`);
    return new Uint8Array(Buffer.from(b64 as string, "base64"));
  };
  if (v.type === 2) {
    const payload = bytes("payload", v.payload);
    if (payload.length === 0) bad("an empty segment");
    return { type: "segment", bytes: payload };
  }
  if (v.type !== 1) bad(`type ${JSON.stringify(v.type)}`);
  const size = v.size ?? 0;
  if (typeof size !== "number" || !Number.isSafeInteger(size) || size < 0) bad("a bad size");
  let name: string;
  if (v.name_raw !== undefined && v.name_raw !== null && v.name_raw !== "") {
    name = latin1.decode(bytes("name_raw", v.name_raw));
  } else {
    if (v.name !== undefined && typeof v.name !== "string") bad("a name that is not a string");
    name = (v.name as string | undefined) ?? "";
  }
  if (name === "" || name.length > 4096) bad("an empty or over-long name");
  if ((size as number) === 0) {
    if (v.payload !== null && v.payload !== undefined) bytes("payload", v.payload);
    return { type: "file", name, size: 0 };
  }
  const crc = bytes("payload", v.payload);
  if (crc.length !== 8) bad("a checksum that is not 8 bytes");
  return { type: "file", name, size: size as number, crc };
}

/**
 * Checks a tar-split against its TOC, walking it as containers/storage's
 * `IterateHeaders` does: each segment is the padding the previous file left
 * and one header group (then the end-of-archive blocks, and zeros), each
 * header is followed by its file entry, which names the same entry with the
 * same size, and which the TOC lists with the same type and size; every TOC
 * entry is met exactly once. Returns the size of the tar it describes, at
 * most `maxTarSize`. A FormatError names `what`.
 */
export function checkTarSplit(
  toc: ChunkedToc,
  items: Iterable<TarSplitItem>,
  maxTarSize: number,
  what: string,
): { tarSize: number } {
  const byPath = new Map(toc.entries.map((e) => [e.path, e]));
  const seen = new Set<string>();
  const globals = new Map<string, Uint8Array>();
  let tarSize = 0;
  let padding = 0;
  let ended = false;
  let header: TarEntry | undefined;
  let index = 0;
  for (const item of items) {
    const bad = (detail: string): never => {
      throw new FormatError(`${what}: tar-split entry ${index}: ${detail}`);
    };
    tarSize += item.type === "segment" ? item.bytes.length : item.size;
    if (tarSize > maxTarSize) bad(`the tar would be larger than ${maxTarSize} bytes`);
    if (item.type === "segment") {
      if (header) bad("a segment where the file of the header before was expected");
      if (item.bytes.length < padding) bad(`${padding} bytes of padding expected, ${item.bytes.length} found`);
      const rest = item.bytes.subarray(padding);
      padding = 0;
      if (ended || (rest.length >= 512 && isZeroBlock(rest.subarray(0, 512)))) {
        if (!isZeroBlock(rest)) bad("data after the end-of-archive blocks");
        ended = ended || rest.length > 0;
      } else if (rest.length > 0) {
        header = parseHeaderGroup(rest, globals);
      }
    } else {
      if (!header) bad(`a file entry for ${JSON.stringify(item.name.slice(0, 200))} without a header before it`);
      const h = header!;
      header = undefined;
      let path: string;
      try {
        path = cleanEntryPath(item.name);
      } catch {
        return bad(`a bad name ${JSON.stringify(item.name.slice(0, 200))}`);
      }
      if (path !== h.path) bad(`names ${JSON.stringify(path)} where its header names ${JSON.stringify(h.path)}`);
      const content = h.kind === "file" ? h.size : 0;
      if (item.size !== h.size) bad(`size ${item.size} where its header says ${h.size}`);
      const e = byPath.get(path);
      if (!e || TOC_TYPE_OF[h.kind] !== e.type || e.size !== h.size) {
        bad(`${JSON.stringify(path)} is not in the TOC as a ${TOC_TYPE_OF[h.kind] ?? h.kind} of ${h.size} bytes`);
      }
      if (seen.has(path)) bad(`${JSON.stringify(path)} a second time`);
      seen.add(path);
      padding = padded(content) - content;
    }
    index++;
  }
  if (header) throw new FormatError(`${what}: tar-split ends after a header, without its file entry`);
  if (seen.size !== toc.entries.length) {
    throw new FormatError(`${what}: tar-split lacks ${toc.entries.length - seen.size} of the TOC's entries`);
  }
  return { tarSize };
}

/** The TOC type of each tar entry kind. */
const TOC_TYPE_OF: Partial<Record<TarEntry["kind"], TocType>> = {
  file: "reg",
  hardlink: "hardlink",
  symlink: "symlink",
  chardev: "char",
  blockdev: "block",
  dir: "dir",
  fifo: "fifo",
};
