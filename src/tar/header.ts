/**
 * Tar headers: the 512-byte ustar/GNU block, PAX and GNU long-name extensions,
 * and the entry they describe together.
 *
 * deltaship never rewrites a header; it keeps the exact bytes of every header
 * group (extension blocks plus the main block) and parses them for metadata only.
 *
 * @module
 */
import { FormatError } from "../errors.ts";
import { cleanEntryPath } from "./path.ts";

/** Tar block size. */
export const BLOCK = 512;

/** Rounds a content size up to whole blocks. */
export function padded(size: number): number {
  return Math.ceil(size / BLOCK) * BLOCK;
}

/** What an entry is on a filesystem. */
export type EntryKind =
  | "file"
  | "hardlink"
  | "symlink"
  | "chardev"
  | "blockdev"
  | "dir"
  | "fifo"
  | "pax-global"
  | "other";

/** One tar entry's metadata, with extensions applied. */
export interface TarEntry {
  /** The cleaned path: relative, no `.` or empty components, `""` for the root. */
  path: string;
  kind: EntryKind;
  /** The raw typeflag character. */
  typeflag: string;
  /** Bytes of content that follow the header group in the archive. */
  size: number;
  mode: number;
  uid: number;
  gid: number;
  /** Modification time, seconds since the epoch (fractional from PAX). */
  mtime: number;
  uname: string;
  gname: string;
  /** Symlink target (verbatim) or hardlink target (cleaned). */
  linkname: string;
  devmajor: number;
  devminor: number;
  /** Extended attributes from `SCHILY.xattr.*` PAX records, values as raw bytes. */
  xattrs: Record<string, Uint8Array>;
}

/** The fields of one 512-byte header block, before extensions are applied. */
export interface RawHeader {
  name: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  typeflag: string;
  linkname: string;
  ustar: boolean;
  gnu: boolean;
  uname: string;
  gname: string;
  devmajor: number;
  devminor: number;
  prefix: string;
}

const utf8 = new TextDecoder("utf-8", { fatal: true });
const latin1 = new TextDecoder("latin1");

/** Decodes a path as tar names are: UTF-8 when valid, else Latin-1 (so no byte is lost). */
export function decodeName(bytes: Uint8Array): string {
  try {
    return utf8.decode(bytes);
  } catch {
    return latin1.decode(bytes);
  }
}

function cString(block: Uint8Array, offset: number, length: number): Uint8Array {
  const field = block.subarray(offset, offset + length);
  const nul = field.indexOf(0);
  return nul < 0 ? field : field.subarray(0, nul);
}

function text(block: Uint8Array, offset: number, length: number): string {
  return decodeName(cString(block, offset, length));
}

/** Largest value JavaScript integers hold exactly; every tar number must fit. */
const MAX_SAFE = Number.MAX_SAFE_INTEGER;

/**
 * Quotes untrusted text for an error message: JSON string escapes, plus the C1
 * controls, DEL and bidirectional overrides that JSON leaves as they are, so that
 * no archive can put terminal escapes or reordering marks in a message.
 */
export function quote(text: string): string {
  return JSON.stringify(text).replace(
    /[\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}

/** A field's bytes for an error message: Latin-1, quoted. */
function shown(bytes: Uint8Array): string {
  return quote(latin1.decode(bytes));
}

/**
 * Parses an octal field as Go's archive/tar does: leading and trailing spaces and
 * NULs are padding, the rest up to a NUL must be octal digits (an empty field is 0).
 * Anything else (a sign, a stray letter, a space between digits) is an error.
 */
function octal(f: Uint8Array, field: string): number {
  let start = 0;
  let end = f.length;
  while (start < end && (f[start] === 0 || f[start] === 0x20)) start++;
  while (end > start && (f[end - 1] === 0 || f[end - 1] === 0x20)) end--;
  const nul = f.subarray(start, end).indexOf(0);
  if (nul >= 0) end = start + nul;
  let v = 0;
  for (let i = start; i < end; i++) {
    const c = f[i];
    if (c < 0x30 || c > 0x37) throw new FormatError(`${field} field ${shown(f)} is not an octal number`);
    v = v * 8 + (c - 0x30); // at most 12 digits: never past 2^36
  }
  return v;
}

/**
 * Parses a numeric header field: GNU base-256 when the first byte's top bit is set
 * (big-endian two's complement, the next bit the sign), else octal. Values that
 * are not safe integers are refused, and so are negative ones unless `signed`.
 */
function numeric(block: Uint8Array, offset: number, length: number, field: string, signed = false): number {
  const f = block.subarray(offset, offset + length);
  if ((f[0] & 0x80) === 0) return octal(f, field);
  // Negative numbers are read inverted (~x == -x - 1), so both signs count up from zero.
  const inv = f[0] & 0x40 ? 0xff : 0;
  let x = (f[0] ^ inv) & 0x7f;
  for (let i = 1; i < f.length; i++) {
    x = x * 256 + (f[i] ^ inv);
    if (x > MAX_SAFE) throw new FormatError(`${field} field (base-256) is out of range`);
  }
  const v = inv ? -x - 1 : x;
  if (!Number.isSafeInteger(v)) throw new FormatError(`${field} field (base-256) is out of range`);
  if (v < 0 && !signed) throw new FormatError(`${field} field is negative (${v})`);
  return v;
}

/** True when a block is all zero bytes (the end-of-archive marker). */
export function isZeroBlock(block: Uint8Array): boolean {
  for (let i = 0; i < block.length; i++) if (block[i] !== 0) return false;
  return true;
}

/** Checks a header block's checksum (unsigned, or signed as some old writers sum). */
function verifyChecksum(block: Uint8Array): void {
  let stored: number;
  try {
    stored = octal(block.subarray(148, 156), "checksum");
  } catch (e) {
    throw new FormatError(`${(e as Error).message} (corrupt or not a tar archive)`, { cause: e });
  }
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < BLOCK; i++) {
    const b = i >= 148 && i < 156 ? 0x20 : block[i];
    unsigned += b;
    signed += b > 127 ? b - 256 : b;
  }
  if (stored !== unsigned && stored !== signed) {
    throw new FormatError("checksum mismatch (corrupt or not a tar archive)");
  }
}

/**
 * Parses one header block, verifying its checksum and parsing every numeric field
 * strictly. Errors name the field, not the entry: the caller knows which entry it is.
 */
export function parseHeaderBlock(block: Uint8Array): RawHeader {
  if (block.length !== BLOCK) throw new FormatError("truncated tar header");
  verifyChecksum(block);
  return headerFields(block);
}

/** The fields of a header block whose checksum has been verified. */
function headerFields(block: Uint8Array): RawHeader {
  const magic = latin1.decode(block.subarray(257, 265));
  const ustar = magic.startsWith("ustar\0");
  const gnu = magic === "ustar  \0";
  return {
    name: text(block, 0, 100),
    mode: numeric(block, 100, 8, "mode"),
    uid: numeric(block, 108, 8, "uid"),
    gid: numeric(block, 116, 8, "gid"),
    size: numeric(block, 124, 12, "size"),
    mtime: numeric(block, 136, 12, "mtime", true),
    typeflag: typeflagOf(block),
    linkname: text(block, 157, 100),
    ustar,
    gnu,
    uname: text(block, 265, 32),
    gname: text(block, 297, 32),
    devmajor: ustar || gnu ? numeric(block, 329, 8, "devmajor") : 0,
    devminor: ustar || gnu ? numeric(block, 337, 8, "devminor") : 0,
    prefix: ustar ? text(block, 345, 155) : "",
  };
}

function typeflagOf(block: Uint8Array): string {
  return block[156] === 0 ? "\0" : String.fromCharCode(block[156]);
}

/** The name a main header block gives its entry, before extensions and cleaning. */
function blockName(block: Uint8Array): string {
  const name = text(block, 0, 100);
  const prefix = latin1.decode(block.subarray(257, 263)) === "ustar\0" ? text(block, 345, 155) : "";
  return prefix ? `${prefix}/${name}` : name;
}

/** Typeflags of blocks that extend the header that follows them. */
export function isExtension(typeflag: string): boolean {
  return typeflag === "x" || typeflag === "L" || typeflag === "K";
}

/** Largest extension payload accepted (PAX records or GNU long names). */
export const MAX_EXTENSION = 1 << 20;

/**
 * Largest header group accepted (extension blocks, their data and the main block):
 * room for a PAX header, a long name and a long link of {@link MAX_EXTENSION} each.
 */
export const MAX_HEADER_GROUP = 4 << 20;

const DIGITS = /^[0-9]+$/;
const PAX_TIME = /^-?[0-9]+(\.[0-9]+)?$/;
/** PAX keys whose values are strings of a header field, where a NUL cannot be. */
const PAX_STRINGS = new Set(["path", "linkpath", "uname", "gname"]);

/**
 * Parses PAX extended-header records (`"%d %s=%s\n"`), values kept as bytes. The
 * length is strictly decimal and must cover the record exactly; keys are
 * non-empty and NUL-free, as are the values of string fields. Trailing NUL
 * padding (which some writers leave) is allowed.
 */
export function parsePax(data: Uint8Array): Map<string, Uint8Array> {
  const out = new Map<string, Uint8Array>();
  let off = 0;
  const bad = (detail: string): never => {
    throw new FormatError(`PAX record at byte ${off}: ${detail}`);
  };
  while (off < data.length) {
    if (data[off] === 0) {
      if (!isZeroBlock(data.subarray(off))) bad("data after NUL padding");
      break;
    }
    const space = data.subarray(off, Math.min(data.length, off + 21)).indexOf(0x20);
    if (space < 0) bad("no length");
    const lenText = latin1.decode(data.subarray(off, off + space));
    if (!DIGITS.test(lenText) || lenText.length > 15) bad(`length ${quote(lenText)} is not a decimal number`);
    const len = Number(lenText);
    // The shortest record after the length and space is "k=\n".
    if (len < space + 4 || off + len > data.length) bad(`length ${len} does not fit the record`);
    if (data[off + len - 1] !== 0x0a) bad("no newline at its end");
    const rec = data.subarray(off + space + 1, off + len - 1);
    const eq = rec.indexOf(0x3d);
    if (eq < 0) bad("no '='");
    if (eq === 0) bad("empty key");
    const keyBytes = rec.subarray(0, eq);
    if (keyBytes.includes(0)) bad("NUL in its key");
    const key = decodeName(keyBytes);
    const value = rec.subarray(eq + 1);
    if (PAX_STRINGS.has(key) && value.includes(0)) bad(`NUL in the value of ${key}`);
    out.set(key, value);
    off += len;
  }
  return out;
}

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

/**
 * A PAX decimal count (`size`, `uid`, `gid`): digits only (no sign, spaces, hex,
 * exponent or fraction), a safe integer. An empty value keeps the header's field.
 */
function paxCount(pax: Map<string, Uint8Array>, key: string): number | undefined {
  const v = pax.get(key);
  if (v === undefined || v.length === 0) return undefined;
  const s = latin1.decode(v);
  if (!DIGITS.test(s)) throw new FormatError(`PAX ${key} ${quote(s)} is not a decimal number`);
  const n = Number(s);
  if (!Number.isSafeInteger(n)) throw new FormatError(`PAX ${key} ${s} is out of range`);
  return n;
}

/** A PAX time (`mtime`, `atime`, `ctime`): `-?digits(.digits)?` seconds since the epoch. */
function paxTime(pax: Map<string, Uint8Array>, key: string): number | undefined {
  const v = pax.get(key);
  if (v === undefined || v.length === 0) return undefined;
  const s = latin1.decode(v);
  if (!PAX_TIME.test(s)) throw new FormatError(`PAX ${key} ${quote(s)} is not a time in seconds`);
  const seconds = Number(s.split(".")[0]);
  if (!Number.isSafeInteger(seconds)) throw new FormatError(`PAX ${key} ${s} is out of range`);
  return Number(s);
}

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
  /** The group is complete: the entry, and the group's exact bytes (a view, valid until `begin`). */
  | { type: "entry"; entry: TarEntry; group: Uint8Array };

const MORE: GroupStep = { type: "more" };

/**
 * Reads one tar header group (extension blocks with their data, then the main
 * block) from bytes handed in as they come: `want` says how many bytes the group
 * needs next, `push` takes at most that many. The one place that knows how header
 * groups are framed, shared by the streaming splitter, the archive indexer and
 * {@link parseHeaderGroup}, so they all apply the same rules. It keeps the PAX
 * global records of the archive it reads.
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
  #longName: string | undefined;
  #longLink: string | undefined;

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
        return { type: "entry", entry, group: this.#buf.subarray(0, this.#len) };
      }
      switch (h.typeflag) {
        case "x":
          for (const [k, v] of parsePax(data)) this.#pax.set(k, v.slice());
          break;
        case "L":
          this.#longName = decodeName(cString(data, 0, data.length));
          break;
        default: // "K"
          this.#longLink = decodeName(cString(data, 0, data.length));
      }
    } catch (e) {
      this.#fail(e, undefined, what);
    }
    this.#want = BLOCK;
    return MORE;
  }

  #finish(h: RawHeader): GroupStep {
    const pax = this.#globals.size ? new Map([...this.#globals, ...this.#pax]) : this.#pax;
    let entry: TarEntry;
    try {
      entry = entryFrom(h, pax, h.name, this.#longName, this.#longLink);
    } catch (e) {
      this.#fail(e, this.#mainName(blockName(this.#buf.subarray(this.#len - BLOCK, this.#len))));
    }
    return { type: "entry", entry, group: this.#buf.subarray(0, this.#len) };
  }

  /** The entry's name as far as the extensions read so far say. */
  #mainName(fromBlock: string): string {
    const paxPath = this.#pax.get("path") ?? this.#globals.get("path");
    if (paxPath?.length) return decodeName(paxPath);
    return this.#longName ?? fromBlock;
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
 * rules as {@link HeaderGroupReader}. `globals` holds PAX global records seen
 * earlier in the archive and is updated by a `g` entry; `offset`, the group's
 * place in the archive, names it in errors. Paths are cleaned and checked
 * (absolute or `..` names are refused).
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
    uname: dec("uname") ?? h.uname,
    gname: dec("gname") ?? h.gname,
    linkname: kind === "hardlink" ? cleanEntryPath(linkname) : linkname,
    devmajor: h.devmajor,
    devminor: h.devminor,
    xattrs,
  };
}
