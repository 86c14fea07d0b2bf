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
  /**
   * A PAX mtime with a fraction, exactly: whole seconds (rounded down, as Go's
   * archive/tar does) and nanoseconds (digits past nine dropped). Absent when
   * the mtime is whole seconds.
   */
  mtimeExact?: { sec: number; nsec: number };
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
/** Latin-1, the decoding that keeps every byte of a header field. */
export const latin1: TextDecoder = new TextDecoder("latin1");

/**
 * Decodes a name (a path, a link target) as its bytes: UTF-8, with each byte
 * that is not part of valid UTF-8 kept as the lone surrogate U+DC80..U+DCFF (as
 * Python's `surrogateescape`), so that {@link encodeName} gives the same bytes
 * back and no two byte strings decode alike.
 */
export function decodeName(bytes: Uint8Array): string {
  if (bytes.length <= 256 && isAscii(bytes)) return String.fromCharCode.apply(null, bytes as unknown as number[]);
  try {
    return utf8.decode(bytes);
  } catch {
    return escapeInvalid(bytes);
  }
}

function isAscii(b: Uint8Array): boolean {
  for (let i = 0; i < b.length; i++) if (b[i] >= 0x80) return false;
  return true;
}

function escapeInvalid(b: Uint8Array): string {
  let s = "";
  for (let i = 0; i < b.length;) {
    const c = b[i];
    const n = c < 0x80 ? 1 : c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3 : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
    let ok = n > 0 && i + n <= b.length;
    for (let k = 1; ok && k < n; k++) ok = (b[i + k] & 0xc0) === 0x80;
    // No overlong forms, surrogates or code points past U+10FFFF.
    if (ok && n === 3) ok = !(c === 0xe0 && b[i + 1] < 0xa0) && !(c === 0xed && b[i + 1] >= 0xa0);
    if (ok && n === 4) ok = !(c === 0xf0 && b[i + 1] < 0x90) && !(c === 0xf4 && b[i + 1] >= 0x90);
    if (ok) {
      s += utf8.decode(b.subarray(i, i + n));
      i += n;
    } else {
      s += String.fromCharCode(0xdc00 + c);
      i++;
    }
  }
  return s;
}

const encoder = new TextEncoder();

/** The bytes of a name {@link decodeName} gave: UTF-8, each lone surrogate U+DC80..U+DCFF the byte it stands for. */
export function encodeName(name: string): Uint8Array {
  if (!/[\ud800-\udfff]/.test(name)) return encoder.encode(name);
  const out: number[] = [];
  for (const ch of name) {
    const cp = ch.codePointAt(0)!;
    if (cp >= 0xdc80 && cp <= 0xdcff) out.push(cp - 0xdc00);
    else out.push(...encoder.encode(ch));
  }
  return Uint8Array.from(out);
}

export function cString(block: Uint8Array, offset: number, length: number): Uint8Array {
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
export function numeric(block: Uint8Array, offset: number, length: number, field: string, signed = false): number {
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
export function verifyChecksum(block: Uint8Array): void {
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
export function headerFields(block: Uint8Array): RawHeader {
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

export function typeflagOf(block: Uint8Array): string {
  return block[156] === 0 ? "\0" : String.fromCharCode(block[156]);
}

/** The name a main header block gives its entry, before extensions and cleaning. */
export function blockName(block: Uint8Array): string {
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
