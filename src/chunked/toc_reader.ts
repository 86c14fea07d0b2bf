/**
 * Reading a zstd:chunked TOC (see `toc.ts`) from a blob that is not trusted:
 * its compressed bytes checked against the digest the layer's annotations
 * give, decompressed to exactly the length they announce, then read as it
 * streams out of the decompressor into a compact form that keeps only what a
 * partial pull needs (types, names, sizes, content digests, where the frames
 * are). Everything is checked: sizes and counts bounded, digests well-formed,
 * names clean and unique, chunks that add up to their file, every frame inside
 * the blob's content and none overlapping another.
 *
 * @module
 */
import { FormatError, UnsafePathError } from "../errors.ts";
import { cleanEntryPath } from "../tar/path.ts";
import { type Digest, Hasher, parseDigest } from "../util/digest.ts";
import { JsonReader } from "../util/json_reader.ts";
import { zstdPieces } from "../compression/zstd/decoder.ts";
import type { ChunkedLayout } from "./annotations.ts";
import type { TocType } from "./toc.ts";

/** Limits on a TOC's contents. */
export const TOC_LIMITS = {
  /** Entries, `chunk` entries included. */
  entries: 1 << 21,
  /** Bytes of a name or link target (Linux's PATH_MAX). */
  name: 4096,
  /** Extended attributes of one entry, bytes of a name and of a value (Linux's limits). */
  xattrs: 1024,
  xattrName: 255,
  xattrValue: 64 << 10,
};

/** A frame of a regular file's content. */
export interface TocFrame {
  /** Where the frame lies in the blob: [offset, end). */
  offset: number;
  end: number;
  /** Where its bytes go in the file, and how many they are. */
  contentOffset: number;
  size: number;
  /** `sha256:<hex>` of its bytes (the file's own digest when it is the only frame). */
  digest: Digest;
  /** A run of zeros (a hole). */
  zeros: boolean;
}

/** A tar entry as the TOC lists it, with what a partial pull needs. */
export interface TocEntry {
  type: TocType;
  /** The name as the TOC gives it, and cleaned (relative, no `.` or empty components; `""` is the root). */
  name: string;
  path: string;
  /** Symlink target (verbatim) or hardlink target (cleaned). */
  linkname?: string;
  size: number;
  /** `sha256:<hex>` of the content (regular files with content). */
  digest?: Digest;
  /** The content's frames in order (regular files with content). */
  frames?: TocFrame[];
}

/** A TOC, read and checked. */
export interface ChunkedToc {
  entries: TocEntry[];
  /** Digest of the compressed tar-split, when the TOC names one. */
  tarSplitDigest?: Digest;
}

/**
 * Reads the TOC of a blob from its compressed bytes (`compressed`, fetched from
 * `layout.toc`): checked against `layout.tocDigest`, decompressed to
 * `layout.toc.uncompressedLength` bytes, parsed by {@link parseToc} with
 * frames bounded by `contentEnd` (where the blob's metadata starts). `what`
 * names the layer in errors (FormatError).
 */
export function readToc(compressed: Uint8Array, layout: ChunkedLayout, contentEnd: number, what: string): ChunkedToc {
  const label = `${what}: zstd:chunked TOC`;
  if (compressed.length !== layout.toc.length) {
    throw new FormatError(`${label}: ${compressed.length} bytes, not the ${layout.toc.length} announced`);
  }
  const hasher = new Hasher(parseDigest(layout.tocDigest).algorithm);
  hasher.update(compressed);
  const actual = hasher.digest();
  if (actual !== layout.tocDigest) {
    throw new FormatError(`${label}: digest ${actual} is not the ${layout.tocDigest} of the layer's annotations`);
  }
  return parseToc(zstdPieces(compressed, layout.toc.uncompressedLength, label), contentEnd, label);
}

/** The fields of one TOC entry as read (before it is checked against its neighbours). */
interface RawEntry {
  type: string;
  name: string;
  linkname: string;
  size: number;
  digest: string;
  offset: number;
  endOffset: number;
  chunkSize: number;
  chunkOffset: number;
  chunkDigest: string;
  chunkType: string;
}

const TYPES = new Set(["reg", "hardlink", "symlink", "char", "block", "dir", "fifo", "chunk"]);
const RFC3339 = /^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?(Z|[+-][0-9]{2}:[0-9]{2})$/;
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;
/** The largest mode, id or device number a TOC may give. */
const MAX_U32 = 0xffffffff;

/**
 * Parses a TOC's JSON, given in pieces (the decompressor's output), into a
 * {@link ChunkedToc}: a FormatError naming `what` for anything that is not a
 * TOC containers/storage would write (keys are matched without regard to
 * case, as it reads them; unknown keys are skipped). Frames must lie in
 * `[0, contentEnd)`.
 */
export function parseToc(pieces: Iterable<Uint8Array>, contentEnd: number, what: string): ChunkedToc {
  const r = new JsonReader(pieces, what, { maxDepth: 32, uniqueKeys: true });
  const toc: ChunkedToc = { entries: [] };
  let version: number | undefined;
  const entries = new EntryChecker(contentEnd, what);
  let count = 0;
  r.object((name) => {
    switch (memberName(r, name).toLowerCase()) {
      case "version":
        version = r.integer();
        break;
      case "entries":
        if (r.null()) break;
        r.array(() => {
          if (count >= TOC_LIMITS.entries) r.fail(`more than ${TOC_LIMITS.entries} entries`);
          entries.add(readEntry(r, count++));
        });
        break;
      case "tarsplitdigest":
        toc.tarSplitDigest = digestValue(r, stringValue(r, 200), "tarSplitDigest");
        break;
      default:
        r.skip();
    }
  });
  r.end();
  if (version !== 1) throw new FormatError(`${what}: version ${version ?? "(none)"}, not 1`);
  toc.entries = entries.finish();
  return toc;
}

/** Reads one entry object, checking each field's form. */
function readEntry(r: JsonReader, index: number): RawEntry {
  const e: RawEntry = {
    type: "",
    name: "",
    linkname: "",
    size: 0,
    digest: "",
    offset: 0,
    endOffset: 0,
    chunkSize: 0,
    chunkOffset: 0,
    chunkDigest: "",
    chunkType: "",
  };
  const bounded = (field: string, max: number) => {
    const v = r.integer();
    if (v < 0 || v > max) r.fail(`entry ${index}: ${field} ${v} is out of range`);
    return v;
  };
  const time = (field: string) => {
    if (!RFC3339.test(stringValue(r, 64))) r.fail(`entry ${index}: ${field} is not an RFC 3339 time`);
  };
  r.object((name) => {
    const key = memberName(r, name);
    switch (key.toLowerCase()) {
      case "type":
        e.type = stringValue(r, 16);
        if (!TYPES.has(e.type)) r.fail(`entry ${index}: unknown type ${JSON.stringify(e.type)}`);
        break;
      case "name":
        e.name = stringValue(r, TOC_LIMITS.name);
        break;
      case "linkname":
        e.linkname = stringValue(r, TOC_LIMITS.name);
        break;
      case "mode":
        bounded("mode", 0o7777777);
        break;
      case "uid":
      case "gid":
      case "devmajor":
      case "devminor":
        bounded(key, MAX_U32);
        break;
      case "size":
        e.size = bounded("size", Number.MAX_SAFE_INTEGER);
        break;
      case "modtime":
      case "accesstime":
      case "changetime":
        time(key);
        break;
      case "xattrs":
        readXattrs(r, index);
        break;
      case "digest":
        e.digest = digestValue(r, stringValue(r, 200), `entry ${index}: digest`);
        break;
      case "chunkdigest":
        e.chunkDigest = digestValue(r, stringValue(r, 200), `entry ${index}: chunkDigest`);
        break;
      case "offset":
        e.offset = bounded("offset", Number.MAX_SAFE_INTEGER);
        break;
      case "endoffset":
        e.endOffset = bounded("endOffset", Number.MAX_SAFE_INTEGER);
        break;
      case "chunksize":
        e.chunkSize = bounded("chunkSize", Number.MAX_SAFE_INTEGER);
        break;
      case "chunkoffset":
        e.chunkOffset = bounded("chunkOffset", Number.MAX_SAFE_INTEGER);
        break;
      case "chunktype":
        e.chunkType = stringValue(r, 16);
        if (e.chunkType !== "" && e.chunkType !== "zeros") r.fail(`entry ${index}: unknown chunkType`);
        break;
      default:
        r.skip();
    }
  });
  if (e.type === "") r.fail(`entry ${index}: no type`);
  return e;
}

function readXattrs(r: JsonReader, index: number): void {
  let count = 0;
  r.object((name) => {
    if (++count > TOC_LIMITS.xattrs) r.fail(`entry ${index}: more than ${TOC_LIMITS.xattrs} xattrs`);
    if (!name || name.length > TOC_LIMITS.xattrName) r.fail(`entry ${index}: bad xattr name`);
    const value = stringValue(r, Math.ceil(TOC_LIMITS.xattrValue / 3) * 4);
    if (!BASE64.test(value) || value.length % 4 !== 0) r.fail(`entry ${index}: xattr ${name} is not base64`);
  }, TOC_LIMITS.xattrName * 4);
}

/** A member name, which may not be longer than 256 bytes. */
function memberName(r: JsonReader, name: string | undefined): string {
  return name ?? r.fail("a member name longer than 256 bytes");
}

/** A string of at most `maxBytes` bytes, or the failure. */
function stringValue(r: JsonReader, maxBytes: number): string {
  return r.string(maxBytes) ?? r.fail(`a string longer than ${maxBytes} bytes`);
}

function digestValue(r: JsonReader, text: string, field: string): Digest {
  if (!/^sha256:[0-9a-f]{64}$/.test(text)) {
    r.fail(`${field} ${JSON.stringify(text.slice(0, 80))} is not a sha256 digest`);
  }
  return text;
}

/**
 * Settles the entries as they come: chunks joined to their file, names
 * cleaned and unique, frames inside the content and, at the end, apart.
 */
class EntryChecker {
  readonly #out: TocEntry[] = [];
  readonly #paths = new Set<string>();
  /** Offset and end of every frame. */
  readonly #ranges: number[] = [];
  /** The last entry and the chunk entries after it, not yet settled. */
  #group: RawEntry[] = [];
  #index = 0;

  constructor(readonly contentEnd: number, readonly what: string) {}

  add(e: RawEntry): void {
    if (e.type === "chunk" && this.#group.length > 0) {
      this.#group.push(e);
      return;
    }
    this.#settle();
    this.#group = [e];
  }

  finish(): TocEntry[] {
    this.#settle();
    checkApart(this.#ranges, this.what);
    return this.#out;
  }

  #settle(): void {
    const group = this.#group;
    if (group.length === 0) return;
    const i = this.#index;
    this.#index += group.length;
    this.#group = [];
    const e = group[0];
    const bad = (detail: string): never => {
      throw new FormatError(`${this.what}: entry ${i} (${JSON.stringify(e.name.slice(0, 200))}): ${detail}`);
    };
    const chunks = group.length - 1;
    if (e.type === "chunk") bad("a chunk entry that follows no regular file");
    if (chunks > 0 && e.type !== "reg") bad("chunk entries after an entry that is not a regular file");
    if (e.name === "" || e.name.includes("\0")) bad("an empty name or a NUL in it");
    const clean = (name: string) => {
      try {
        return cleanEntryPath(name);
      } catch (err) {
        if (err instanceof UnsafePathError) bad(err.message);
        throw err;
      }
    };
    const path = clean(e.name);
    if (path === "" && e.type !== "dir") bad("only a directory can be the root");
    if (this.#paths.has(path)) bad("a second entry for the same path");
    this.#paths.add(path);
    const entry: TocEntry = { type: e.type as TocType, name: e.name, path, size: e.size };
    if (e.type === "symlink" || e.type === "hardlink") {
      if (e.linkname === "") bad("a link without a target");
      entry.linkname = e.type === "hardlink" ? clean(e.linkname) : e.linkname;
    } else if (e.linkname !== "") {
      bad(`a link target on a ${e.type}`);
    }
    if (e.type === "reg" && e.size > 0) {
      entry.digest = e.digest || bad("no digest");
      entry.frames = framesOf(group, bad);
      for (const f of entry.frames) {
        if (f.end > this.contentEnd) {
          bad(`a frame at ${f.offset}-${f.end} past the content's end at ${this.contentEnd}`);
        }
        this.#ranges.push(f.offset, f.end);
      }
    } else {
      if (e.type !== "reg" && e.size !== 0) bad(`a ${e.type} with a size`);
      if (e.digest !== "" && e.digest !== EMPTY_DIGEST) bad("a digest without content");
      if (e.offset !== 0 || e.endOffset !== 0 || e.chunkSize !== 0 || e.chunkDigest !== "") {
        bad("frames without content");
      }
    }
    this.#out.push(entry);
  }
}

const EMPTY_DIGEST = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/** The frames of a regular file: `group` is its entry and its chunk entries. */
function framesOf(group: RawEntry[], bad: (detail: string) => never): TocFrame[] {
  const file = group[0];
  const chunks = group.length - 1;
  if (file.offset <= 0 || file.endOffset <= file.offset) bad(`frames at ${file.offset}-${file.endOffset}`);
  if (chunks === 0 && file.chunkSize === 0) {
    if (file.chunkDigest !== "" || file.chunkType !== "") bad("chunk fields without a chunk size");
    return [{
      offset: file.offset,
      end: file.endOffset,
      contentOffset: 0,
      size: file.size,
      digest: file.digest,
      zeros: false,
    }];
  }
  const frames: TocFrame[] = [];
  let covered = 0;
  for (let k = 0; k <= chunks; k++) {
    const c = group[k];
    if (k > 0 && c.name !== file.name) bad(`chunk ${k} names ${JSON.stringify(c.name.slice(0, 200))}`);
    if (k > 0 && (c.size !== 0 || c.digest !== "" || c.endOffset !== 0 || c.linkname !== "")) {
      bad(`chunk ${k} has fields of a file`);
    }
    const end = k < chunks ? group[k + 1].offset : file.endOffset;
    if (c.chunkOffset !== covered) bad(`chunk ${k} starts at ${c.chunkOffset}, not ${covered}`);
    if (c.chunkSize <= 0) bad(`chunk ${k} is empty`);
    if (c.offset <= 0 || end <= c.offset) bad(`chunk ${k}'s frame at ${c.offset}-${end}`);
    if (c.chunkDigest === "") bad(`chunk ${k} has no digest`);
    frames.push({
      offset: c.offset,
      end,
      contentOffset: covered,
      size: c.chunkSize,
      digest: chunks === 0 ? file.digest : c.chunkDigest,
      zeros: c.chunkType === "zeros",
    });
    covered += c.chunkSize;
  }
  if (covered !== file.size) bad(`chunks of ${covered} bytes for a file of ${file.size}`);
  if (chunks === 0 && file.chunkDigest !== file.digest) bad("one chunk whose digest is not the file's");
  return frames;
}

/** Fails when two frames overlap (`ranges`: offset, end pairs). */
function checkApart(ranges: number[], what: string): void {
  const n = ranges.length / 2;
  const order = Array.from({ length: n }, (_, k) => k).sort((a, b) => ranges[2 * a] - ranges[2 * b]);
  for (let k = 1; k < n; k++) {
    const prev = order[k - 1];
    const cur = order[k];
    if (ranges[2 * cur] < ranges[2 * prev + 1]) {
      throw new FormatError(
        `${what}: frames ${ranges[2 * prev]}-${ranges[2 * prev + 1]} and ${ranges[2 * cur]}-${
          ranges[2 * cur + 1]
        } overlap`,
      );
    }
  }
}
