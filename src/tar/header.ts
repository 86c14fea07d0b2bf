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

function number(block: Uint8Array, offset: number, length: number, field: string): number {
  const f = block.subarray(offset, offset + length);
  if (f[0] & 0x80) {
    // GNU base-256: big-endian two's complement, first byte's top bit is the marker.
    let v = f[0] === 0xff ? -1 : f[0] & 0x7f;
    for (let i = 1; i < f.length; i++) v = v * 256 + f[i];
    if (!Number.isSafeInteger(v)) throw new FormatError(`tar header ${field} is out of range`);
    return v;
  }
  let v = 0;
  let seen = false;
  for (let i = 0; i < f.length; i++) {
    const c = f[i];
    if (c === 0 || c === 0x20) {
      if (seen) break;
      continue;
    }
    if (c < 0x30 || c > 0x37) throw new FormatError(`tar header ${field} is not an octal number`);
    v = v * 8 + (c - 0x30);
    seen = true;
  }
  return v;
}

/** True when a block is all zero bytes (the end-of-archive marker). */
export function isZeroBlock(block: Uint8Array): boolean {
  for (let i = 0; i < block.length; i++) if (block[i] !== 0) return false;
  return true;
}

/** Parses one header block, verifying its checksum. */
export function parseHeaderBlock(block: Uint8Array): RawHeader {
  if (block.length !== BLOCK) throw new FormatError("truncated tar header");
  const stored = number(block, 148, 8, "checksum");
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < BLOCK; i++) {
    const b = i >= 148 && i < 156 ? 0x20 : block[i];
    unsigned += b;
    signed += b > 127 ? b - 256 : b;
  }
  if (stored !== unsigned && stored !== signed) {
    throw new FormatError("tar header checksum mismatch (corrupt or not a tar archive)");
  }
  const magic = latin1.decode(block.subarray(257, 265));
  const ustar = magic.startsWith("ustar\0");
  const gnu = magic === "ustar  \0";
  const typeflag = block[156] === 0 ? "\0" : String.fromCharCode(block[156]);
  return {
    name: text(block, 0, 100),
    mode: number(block, 100, 8, "mode"),
    uid: number(block, 108, 8, "uid"),
    gid: number(block, 116, 8, "gid"),
    size: number(block, 124, 12, "size"),
    mtime: number(block, 136, 12, "mtime"),
    typeflag,
    linkname: text(block, 157, 100),
    ustar,
    gnu,
    uname: text(block, 265, 32),
    gname: text(block, 297, 32),
    devmajor: ustar || gnu ? number(block, 329, 8, "devmajor") : 0,
    devminor: ustar || gnu ? number(block, 337, 8, "devminor") : 0,
    prefix: ustar ? text(block, 345, 155) : "",
  };
}

/** Typeflags of blocks that extend the header that follows them. */
export function isExtension(typeflag: string): boolean {
  return typeflag === "x" || typeflag === "L" || typeflag === "K";
}

/** Largest extension payload accepted (PAX records or GNU long names). */
export const MAX_EXTENSION = 1 << 20;

/** Parses PAX extended-header records (`"%d %s=%s\n"`), values kept as bytes. */
export function parsePax(data: Uint8Array): Map<string, Uint8Array> {
  const out = new Map<string, Uint8Array>();
  let off = 0;
  while (off < data.length) {
    if (data[off] === 0) break; // trailing NUL padding some writers leave
    const space = data.indexOf(0x20, off);
    if (space < 0) throw new FormatError("malformed PAX record");
    const len = parseInt(latin1.decode(data.subarray(off, space)), 10);
    if (!Number.isSafeInteger(len) || len <= space - off + 1 || off + len > data.length) {
      throw new FormatError("malformed PAX record length");
    }
    const rec = data.subarray(space + 1, off + len - 1);
    if (data[off + len - 1] !== 0x0a) throw new FormatError("malformed PAX record terminator");
    const eq = rec.indexOf(0x3d);
    if (eq < 0) throw new FormatError("malformed PAX record (no '=')");
    out.set(decodeName(rec.subarray(0, eq)), rec.subarray(eq + 1));
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

function paxNumber(v: Uint8Array | undefined, field: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(latin1.decode(v));
  if (!Number.isFinite(n)) throw new FormatError(`PAX ${field} is not a number`);
  return n;
}

/**
 * Parses a complete header group: any `x`/`L`/`K` extension blocks with their
 * data, then the main header block. `globals` holds PAX global records seen earlier
 * in the archive and is updated by a `g` entry. Paths are cleaned and checked
 * (absolute or `..` names are refused).
 */
export function parseHeaderGroup(group: Uint8Array, globals: Map<string, Uint8Array>): TarEntry {
  let pax = new Map<string, Uint8Array>();
  let longName: string | undefined;
  let longLink: string | undefined;
  let off = 0;
  for (;;) {
    if (off + BLOCK > group.length) throw new FormatError("truncated tar header group");
    const h = parseHeaderBlock(group.subarray(off, off + BLOCK));
    off += BLOCK;
    if (h.typeflag === "g") {
      for (const [k, v] of parsePax(group.subarray(off, off + h.size))) globals.set(k, v);
      return { ...entryFrom(h, new Map(), "", undefined, undefined), size: 0 };
    }
    if (isExtension(h.typeflag)) {
      const data = group.subarray(off, off + h.size);
      if (data.length !== h.size) throw new FormatError("truncated tar extension header");
      if (h.typeflag === "x") pax = new Map([...pax, ...parsePax(data)]);
      else if (h.typeflag === "L") longName = decodeName(cString(data, 0, data.length));
      else longLink = decodeName(cString(data, 0, data.length));
      off += padded(h.size);
      continue;
    }
    const merged = globals.size ? new Map([...globals, ...pax]) : pax;
    return entryFrom(h, merged, h.name, longName, longLink);
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
  let rawName = paxPath ? decodeName(paxPath) : longName ?? (h.prefix ? `${h.prefix}/${name}` : name);
  let kind = KIND[h.typeflag] ?? "other";
  if (kind === "file" && h.typeflag === "\0" && rawName.endsWith("/")) kind = "dir";
  const paxLink = pax.get("linkpath");
  const linkname = paxLink ? decodeName(paxLink) : longLink ?? h.linkname;
  const xattrs: Record<string, Uint8Array> = {};
  for (const [k, v] of pax) {
    if (k.startsWith("SCHILY.xattr.")) xattrs[k.slice("SCHILY.xattr.".length)] = v;
  }
  if (kind === "pax-global") rawName = "";
  const dec = (k: string) => {
    const v = pax.get(k);
    return v === undefined ? undefined : decodeName(v);
  };
  return {
    path: kind === "pax-global" ? "" : cleanEntryPath(rawName),
    kind,
    typeflag: h.typeflag,
    size: paxNumber(pax.get("size"), "size") ?? h.size,
    mode: h.mode,
    uid: paxNumber(pax.get("uid"), "uid") ?? h.uid,
    gid: paxNumber(pax.get("gid"), "gid") ?? h.gid,
    mtime: paxNumber(pax.get("mtime"), "mtime") ?? h.mtime,
    uname: dec("uname") ?? h.uname,
    gname: dec("gname") ?? h.gname,
    linkname: kind === "hardlink" ? cleanEntryPath(linkname) : linkname,
    devmajor: h.devmajor,
    devminor: h.devminor,
    xattrs,
  };
}
