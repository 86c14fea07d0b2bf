/**
 * Tar header groups: the extension blocks (`x`, `L`, `K`, and `g` globals) with
 * their data, then the main header block, read and turned into one
 * {@link TarEntry}. The one place that knows how header groups are framed,
 * shared by the streaming splitter, the archive indexer and the readers of
 * stored layer records.
 *
 * @module
 */
import { FormatError } from "../errors.ts";
import { cleanEntryPath } from "./path.ts";
import {
  BLOCK,
  blockName,
  cString,
  decodeName,
  type EntryKind,
  headerFields,
  isExtension,
  isZeroBlock,
  MAX_EXTENSION,
  MAX_HEADER_GROUP,
  padded,
  quote,
  type RawHeader,
  type TarEntry,
  typeflagOf,
  verifyChecksum,
} from "./header.ts";
import { parsePax, paxCount, paxTime, paxTimeExact } from "./pax.ts";

/** Entry kinds by typeflag. */
const KIND: Record<string, EntryKind> = {
  "0": "file",
  "\0": "file",
  "7": "file",
  "1": "hardlink",
  "2": "symlink",
  "3": "chardev",
  "4": "blockdev",
  "5": "dir",
  "6": "fifo",
  "g": "pax-global",
};

/** Names an entry in errors: by its path when known, and by its offset when known. */
function entryLabel(path: string | undefined, offset: number | undefined): string {
  const at = offset === undefined ? undefined : `at byte ${offset}`;
  if (path === undefined) return at ? `tar entry ${at}` : "tar entry";
  return `tar entry ${quote(path)}${at ? ` (${at})` : ""}`;
}

/** What {@link HeaderGroupReader.push} found. */
export type GroupStep =
  /** The group needs more bytes (see {@link HeaderGroupReader.want}). */
  | { type: "more" }
  /** A zero block where a group would start: the end-of-archive marker, `bytes` the block. */
  | { type: "end"; bytes: Uint8Array }
  /**
   * The group is complete: the entry, the group's exact bytes and its extensions
   * (views, valid until `begin`).
   */
  | { type: "entry"; entry: TarEntry; group: Uint8Array; extensions: HeaderExtensions };

/**
 * What a header group's extension headers said, as they said it: for readers
 * that must see an entry as another tar reader does (the name bytes before
 * decoding, the PAX records of this entry alone, without the globals).
 */
export interface HeaderExtensions {
  /** The PAX records of the entry's own `x` headers. */
  pax: ReadonlyMap<string, Uint8Array>;
  /** The GNU long name (`L`) and long link (`K`), up to their first NUL. */
  longName?: Uint8Array;
  longLink?: Uint8Array;
}

const MORE: GroupStep = { type: "more" };

/**
 * Reads one tar header group (extension blocks with their data, then the main
 * block) from bytes handed in as they come: `want` says how many bytes the group
 * needs next, `push` takes at most that many. The one place that knows how header
 * groups are framed, shared by the streaming splitter, the archive indexer and
 * {@link parseHeaderGroup}, so they all apply the same rules. It records the PAX
 * global records of the archive it reads, but no entry takes them: as Go's
 * archive/tar, which container engines extract with, and composefs-rs, a `g`
 * header is checked and otherwise ignored.
 *
 * Every size is checked before it is used: extension data is bounded by
 * {@link MAX_EXTENSION} and the group by {@link MAX_HEADER_GROUP}; `want` is always
 * positive until the group is complete, so a reader driven by it always advances.
 */
export class HeaderGroupReader {
  readonly #globals: Map<string, Uint8Array>;
  #buf = new Uint8Array(4 * BLOCK);
  #len = 0;
  #want = BLOCK;
  /** Offset of the group in the archive, for error messages. */
  #start: number | undefined;
  /** The extension header whose data is being read. */
  #ext: RawHeader | undefined;
  #pax = new Map<string, Uint8Array>();
  #longName: Uint8Array | undefined;
  #longLink: Uint8Array | undefined;

  /** `globals` holds the archive's PAX global records (shared with the caller). */
  constructor(globals: Map<string, Uint8Array> = new Map()) {
    this.#globals = globals;
  }

  /** Starts a new group, at `offset` in the archive when known (for error messages). */
  begin(offset?: number): void {
    this.#len = 0;
    this.#want = BLOCK;
    this.#start = offset;
    this.#ext = undefined;
    this.#pax = new Map();
    this.#longName = undefined;
    this.#longLink = undefined;
  }

  /** Bytes the group needs before the next step (positive until it is complete). */
  get want(): number {
    return this.#want;
  }

  /** Bytes of the group received so far. */
  get length(): number {
    return this.#len;
  }

  /** Takes the next bytes of the group (at most {@link want}); says whether it is complete. */
  push(piece: Uint8Array): GroupStep {
    if (piece.length > this.#want) throw new RangeError(`pushed ${piece.length} bytes, the group wants ${this.#want}`);
    const need = this.#len + piece.length;
    if (need > this.#buf.length) {
      const bigger = new Uint8Array(Math.max(need, this.#buf.length * 2));
      bigger.set(this.#buf.subarray(0, this.#len));
      this.#buf = bigger;
    }
    this.#buf.set(piece, this.#len);
    this.#len = need;
    this.#want -= piece.length;
    if (this.#want > 0) return MORE;
    return this.#ext ? this.#extensionData(this.#ext) : this.#headerBlock();
  }

  #headerBlock(): GroupStep {
    const at = this.#len - BLOCK;
    const block = this.#buf.subarray(at, this.#len);
    if (at === 0 && isZeroBlock(block)) return { type: "end", bytes: block };
    const typeflag = typeflagOf(block);
    const extension = isExtension(typeflag) || typeflag === "g";
    const what = extension
      ? `'${typeflag}' extension header${at > 0 ? ` (at byte ${this.#offset(at)})` : ""}`
      : `header${at > 0 ? ` (at byte ${this.#offset(at)})` : ""}`;
    let h: RawHeader;
    try {
      verifyChecksum(block);
    } catch (e) {
      this.#fail(e, undefined, what);
    }
    try {
      h = headerFields(block);
    } catch (e) {
      this.#fail(e, extension ? undefined : this.#mainName(blockName(block)), what);
    }
    if (!extension) return this.#finish(h);
    if (typeflag === "g" && at > 0) this.#fail(`${what} inside another entry's headers`);
    if (h.size > MAX_EXTENSION) this.#fail(`${what} of ${h.size} bytes is over the limit of ${MAX_EXTENSION}`);
    if (this.#len + padded(h.size) + BLOCK > MAX_HEADER_GROUP) {
      this.#fail(`headers of over ${MAX_HEADER_GROUP} bytes (too many extension headers)`);
    }
    this.#ext = h;
    this.#want = padded(h.size);
    return this.#want > 0 ? MORE : this.#extensionData(h);
  }

  #extensionData(h: RawHeader): GroupStep {
    this.#ext = undefined;
    const from = this.#len - padded(h.size);
    const data = this.#buf.subarray(from, from + h.size);
    const what = `'${h.typeflag}' extension header:`;
    try {
      if (h.typeflag === "g") {
        for (const [k, v] of parsePax(data)) this.#globals.set(k, v.slice());
        const entry = { ...entryFrom(h, new Map(), "", undefined, undefined), size: 0 };
        return { type: "entry", entry, group: this.#buf.subarray(0, this.#len), extensions: { pax: new Map() } };
      }
      switch (h.typeflag) {
        case "x":
          for (const [k, v] of parsePax(data)) this.#pax.set(k, v.slice());
          break;
        case "L":
          this.#longName = cString(data, 0, data.length);
          break;
        default: // "K"
          this.#longLink = cString(data, 0, data.length);
      }
    } catch (e) {
      this.#fail(e, undefined, what);
    }
    this.#want = BLOCK;
    return MORE;
  }

  #finish(h: RawHeader): GroupStep {
    const longName = this.#longName && decodeName(this.#longName);
    const longLink = this.#longLink && decodeName(this.#longLink);
    let entry: TarEntry;
    try {
      entry = entryFrom(h, this.#pax, h.name, longName, longLink);
    } catch (e) {
      this.#fail(e, this.#mainName(blockName(this.#buf.subarray(this.#len - BLOCK, this.#len))));
    }
    const extensions = { pax: this.#pax, longName: this.#longName, longLink: this.#longLink };
    return { type: "entry", entry, group: this.#buf.subarray(0, this.#len), extensions };
  }

  /** The entry's name as far as the extensions read so far say. */
  #mainName(fromBlock: string): string {
    const paxPath = this.#pax.get("path");
    if (paxPath?.length) return decodeName(paxPath);
    return this.#longName ? decodeName(this.#longName) : fromBlock;
  }

  #offset(at: number): number | string {
    return this.#start === undefined ? `${at} of the group` : this.#start + at;
  }

  /** Throws a FormatError naming the entry: `problem` is a message or an error to wrap. */
  #fail(problem: unknown, path?: string, what?: string): never {
    const label = entryLabel(path, this.#start);
    if (typeof problem === "string") throw new FormatError(`${label}: ${problem}`);
    if (!(problem instanceof FormatError)) throw problem;
    throw new FormatError(`${label}: ${what ? `${what} ` : ""}${problem.message}`, { cause: problem });
  }
}

/**
 * Parses a complete header group (the exact bytes of one: any `x`/`L`/`K`
 * extension blocks with their data, then the main header block) with the same
 * rules as {@link HeaderGroupReader}. `globals` is updated with the records of
 * a `g` entry (entries do not take them); `offset`, the group's place in the
 * archive, names it in errors. Paths are cleaned and checked (a leading `/` is
 * dropped, `..` names are refused).
 */
export function parseHeaderGroup(group: Uint8Array, globals: Map<string, Uint8Array>, offset?: number): TarEntry {
  const reader = new HeaderGroupReader(globals);
  reader.begin(offset);
  let pos = 0;
  for (;;) {
    const n = reader.want;
    if (pos + n > group.length) throw new FormatError(`${entryLabel(undefined, offset)}: truncated header group`);
    const step = reader.push(group.subarray(pos, pos + n));
    pos += n;
    if (step.type === "end") throw new FormatError(`${entryLabel(undefined, offset)}: a zero block, not a header`);
    if (step.type === "entry") {
      if (pos !== group.length) {
        throw new FormatError(`${entryLabel(step.entry.path, offset)}: ${group.length - pos} bytes after its headers`);
      }
      return step.entry;
    }
  }
}

function entryFrom(
  h: RawHeader,
  pax: Map<string, Uint8Array>,
  name: string,
  longName: string | undefined,
  longLink: string | undefined,
): TarEntry {
  const paxPath = pax.get("path");
  let rawName = paxPath?.length ? decodeName(paxPath) : longName ?? (h.prefix ? `${h.prefix}/${name}` : name);
  let kind = KIND[h.typeflag] ?? "other";
  if (kind === "file" && h.typeflag === "\0" && rawName.endsWith("/")) kind = "dir";
  const paxLink = pax.get("linkpath");
  const linkname = paxLink?.length ? decodeName(paxLink) : longLink ?? h.linkname;
  const xattrs: Record<string, Uint8Array> = {};
  for (const [k, v] of pax) {
    if (k.startsWith("SCHILY.xattr.")) xattrs[k.slice("SCHILY.xattr.".length)] = v;
  }
  if (kind === "pax-global") rawName = "";
  const dec = (k: string) => {
    const v = pax.get(k);
    return v === undefined || v.length === 0 ? undefined : decodeName(v);
  };
  const mtimeExact = paxTimeExact(pax, "mtime");
  // Parsed for their checks only: deltaship keeps these in the header bytes.
  paxTime(pax, "atime");
  paxTime(pax, "ctime");
  return {
    path: kind === "pax-global" ? "" : cleanEntryPath(rawName),
    kind,
    typeflag: h.typeflag,
    size: paxCount(pax, "size") ?? h.size,
    mode: h.mode,
    uid: paxCount(pax, "uid") ?? h.uid,
    gid: paxCount(pax, "gid") ?? h.gid,
    mtime: paxTime(pax, "mtime") ?? h.mtime,
    ...(mtimeExact ? { mtimeExact } : {}),
    uname: dec("uname") ?? h.uname,
    gname: dec("gname") ?? h.gname,
    linkname: kind === "hardlink" ? cleanEntryPath(linkname) : linkname,
    devmajor: h.devmajor,
    devminor: h.devminor,
    xattrs,
  };
}
