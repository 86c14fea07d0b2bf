/**
 * composefs dumpfiles (composefs-dump(5)): the text form of a composefs tree that
 * `composefs-info dump` prints and `mkcomposefs --from-file` reads. One file per
 * line, space-separated:
 *
 * ```
 * PATH SIZE MODE NLINK UID GID RDEV MTIME PAYLOAD CONTENT DIGEST [XATTR=VALUE]...
 * ```
 *
 * PATH, PAYLOAD, CONTENT and the xattrs are escaped: `\xNN` for any byte, `\\`,
 * `\n`, `\r`, `\t`; `-` stands for an absent optional field (a real `-` is written
 * `\x2d`); `=` is escaped in xattr fields. MODE is octal, with a leading `@` for a
 * hardlink, whose PAYLOAD is then the path of its target. MTIME is
 * `SECONDS.NANOSECONDS`. DIGEST is the fs-verity digest in hex.
 *
 * This module only reads and writes lines ({@link parseDumpfile} from bytes,
 * {@link readDumpfile} from a stream, {@link formatDumpfile}); `tree.ts` turns
 * entries into a tree and back. A malformed line is a {@link FormatError} that
 * names its line number and field.
 *
 * @module
 */
import { FormatError } from "../errors.ts";

/** File type bits of `st_mode`. */
export const S_IFMT = 0o170000;
/** Socket. */
export const S_IFSOCK = 0o140000;
/** Symbolic link. */
export const S_IFLNK = 0o120000;
/** Regular file. */
export const S_IFREG = 0o100000;
/** Block device. */
export const S_IFBLK = 0o060000;
/** Directory. */
export const S_IFDIR = 0o040000;
/** Character device. */
export const S_IFCHR = 0o020000;
/** Fifo. */
export const S_IFIFO = 0o010000;

const FILE_TYPES = new Set([S_IFSOCK, S_IFLNK, S_IFREG, S_IFBLK, S_IFDIR, S_IFCHR, S_IFIFO]);

/** Longest path a dumpfile may name (Linux PATH_MAX). */
export const MAX_PATH = 4096;
/** Longest xattr name (Linux XATTR_NAME_MAX). */
export const MAX_XATTR_NAME = 255;
/** Largest xattr value (Linux XATTR_SIZE_MAX; EROFS stores the size in 16 bits). */
export const MAX_XATTR_VALUE = 65535;
/** Largest inline CONTENT this parser accepts, to keep a hostile dumpfile bounded. */
export const MAX_INLINE_CONTENT = 1 << 20;

/** One parsed dumpfile line. Fields that are `-` in the text are null here. */
export interface DumpEntry {
  /** 1-based line number in the input, for error messages (0 when built in code). */
  line: number;
  /** Absolute path, in canonical form (no empty, `.` or `..` components). */
  path: Uint8Array;
  size: number;
  /** Full `st_mode`: file type and permissions. */
  mode: number;
  /** The MODE field had a leading `@`: this entry is a hardlink to PAYLOAD. */
  hardlink: boolean;
  nlink: number;
  uid: number;
  gid: number;
  rdev: number;
  mtime: { sec: number; nsec: number };
  payload: Uint8Array | null;
  content: Uint8Array | null;
  /** The fs-verity digest (32 bytes). */
  digest: Uint8Array | null;
  /** Xattrs in the order the line gives them. */
  xattrs: { name: Uint8Array; value: Uint8Array }[];
}

const FIELDS = ["PATH", "SIZE", "MODE", "NLINK", "UID", "GID", "RDEV", "MTIME", "PAYLOAD", "CONTENT", "DIGEST"];

/**
 * Parses a whole dumpfile: one entry per non-empty line, in order. A final line
 * without a newline is accepted. Entries are checked one by one here; how they fit
 * together (parents first, no duplicates) is `tree.ts`'s job.
 */
export function* parseDumpfile(text: Uint8Array | string): Generator<DumpEntry> {
  const bytes = typeof text === "string" ? new TextEncoder().encode(text) : text;
  let start = 0;
  let line = 0;
  while (start < bytes.length) {
    let end = bytes.indexOf(0x0a, start);
    if (end < 0) end = bytes.length;
    line++;
    if (end > start) yield parseDumpLine(bytes.subarray(start, end), line);
    start = end + 1;
  }
}

/** Longest dumpfile line {@link readDumpfile} accepts (inline content, escaped, is the bulk of a long one). */
export const MAX_LINE = 4 * MAX_INLINE_CONTENT + 16 * MAX_XATTR_VALUE;

/**
 * Parses a dumpfile as it streams in, holding one line at a time (at most
 * {@link MAX_LINE} bytes). Yields the entries as {@link parseDumpfile} does.
 */
export async function* readDumpfile(stream: ReadableStream<Uint8Array>): AsyncGenerator<DumpEntry> {
  let parts: Uint8Array[] = []; // the start of a line that continues in the next chunk
  let partsLength = 0;
  let line = 0;
  const joined = (last: Uint8Array) => {
    if (parts.length === 0) return last;
    const out = new Uint8Array(partsLength + last.length);
    let o = 0;
    for (const p of [...parts, last]) {
      out.set(p, o);
      o += p.length;
    }
    parts = [];
    partsLength = 0;
    return out;
  };
  for await (const chunk of stream) {
    let start = 0;
    for (let nl = chunk.indexOf(0x0a); nl >= 0; nl = chunk.indexOf(0x0a, start)) {
      const text = joined(chunk.subarray(start, nl));
      line++;
      if (text.length > MAX_LINE) throw new FormatError(`dumpfile line ${line}: longer than ${MAX_LINE} bytes`);
      if (text.length > 0) yield parseDumpLine(text, line);
      start = nl + 1;
    }
    if (start < chunk.length) {
      parts.push(chunk.slice(start));
      partsLength += chunk.length - start;
      if (partsLength > MAX_LINE) throw new FormatError(`dumpfile line ${line + 1}: longer than ${MAX_LINE} bytes`);
    }
  }
  if (partsLength > 0) yield parseDumpLine(joined(new Uint8Array(0)), line + 1);
}

/** Parses one line (without its newline); `line` is its number for error messages. */
export function parseDumpLine(text: Uint8Array, line: number): DumpEntry {
  const fields: Uint8Array[] = [];
  let start = 0;
  for (;;) {
    const sp = text.indexOf(0x20, start);
    fields.push(text.subarray(start, sp < 0 ? text.length : sp));
    if (sp < 0) break;
    start = sp + 1;
  }
  const at = (field: string) => `dumpfile line ${line}, field ${field}`;
  if (fields.length < FIELDS.length) {
    throw new FormatError(
      `dumpfile line ${line}: ${fields.length} fields, expected at least ${FIELDS.length} (missing ${
        FIELDS[fields.length]
      })`,
    );
  }
  const path = unescape(fields[0], at("PATH"));
  checkPath(path, at("PATH"));
  const size = decimal(fields[1], at("SIZE"), Number.MAX_SAFE_INTEGER);
  const { mode, hardlink } = parseMode(fields[2], at("MODE"));
  const nlink = decimal(fields[3], at("NLINK"), 0xffffffff);
  const uid = decimal(fields[4], at("UID"), 0xffffffff);
  const gid = decimal(fields[5], at("GID"), 0xffffffff);
  const rdev = decimal(fields[6], at("RDEV"), 0xffffffff);
  const mtime = parseMtime(fields[7], at("MTIME"));
  const payload = optional(fields[8], at("PAYLOAD"));
  if (payload && (payload.length > MAX_PATH || payload.includes(0))) {
    throw new FormatError(`${at("PAYLOAD")}: longer than ${MAX_PATH} bytes or contains NUL`);
  }
  if (hardlink && payload) checkPath(payload, at("PAYLOAD"));
  const content = optional(fields[9], at("CONTENT"), MAX_INLINE_CONTENT);
  const digestText = optional(fields[10], at("DIGEST"));
  const digest = digestText ? parseDigest(digestText, at("DIGEST")) : null;
  const xattrs: DumpEntry["xattrs"] = [];
  for (let i = FIELDS.length; i < fields.length; i++) {
    const where = at(`XATTR ${i - FIELDS.length + 1}`);
    const f = fields[i];
    const eq = f.indexOf(0x3d);
    if (eq < 0) throw new FormatError(`${where}: no = between name and value`);
    const name = unescape(f.subarray(0, eq), where);
    if (name.length === 0 || name.length > MAX_XATTR_NAME || name.includes(0)) {
      throw new FormatError(`${where}: the name is empty, longer than ${MAX_XATTR_NAME} bytes, or contains NUL`);
    }
    const value = unescape(f.subarray(eq + 1), where, MAX_XATTR_VALUE);
    xattrs.push({ name, value });
  }
  return { line, path, size, mode, hardlink, nlink, uid, gid, rdev, mtime, payload, content, digest, xattrs };
}

function checkPath(path: Uint8Array, where: string): void {
  if (path.length === 0 || path[0] !== 0x2f) throw new FormatError(`${where}: not an absolute path`);
  if (path.length > MAX_PATH) throw new FormatError(`${where}: longer than ${MAX_PATH} bytes`);
  if (path.includes(0)) throw new FormatError(`${where}: contains NUL`);
  if (path.length === 1) return;
  let start = 1;
  for (;;) {
    let end = path.indexOf(0x2f, start);
    if (end < 0) end = path.length;
    const len = end - start;
    if (len === 0) throw new FormatError(`${where}: empty path component (// or a trailing /)`);
    if (path[start] === 0x2e && (len === 1 || (len === 2 && path[start + 1] === 0x2e))) {
      throw new FormatError(`${where}: . or .. path component`);
    }
    if (len > 255) throw new FormatError(`${where}: a path component is longer than 255 bytes`);
    if (end === path.length) return;
    start = end + 1;
  }
}

function decimal(field: Uint8Array, where: string, max: number): number {
  if (field.length === 0 || field.length > 16 || field.some((c) => c < 0x30 || c > 0x39)) {
    throw new FormatError(`${where}: ${show(field)} is not a decimal number`);
  }
  const n = Number(ascii(field));
  if (n > max) throw new FormatError(`${where}: ${n} is too large (at most ${max})`);
  return n;
}

function parseMode(field: Uint8Array, where: string): { mode: number; hardlink: boolean } {
  const hardlink = field[0] === 0x40; // '@'
  const digits = hardlink ? field.subarray(1) : field;
  if (digits.length === 0 || digits.length > 6 || digits.some((c) => c < 0x30 || c > 0x37)) {
    throw new FormatError(`${where}: ${show(field)} is not an octal mode`);
  }
  const mode = parseInt(ascii(digits), 8);
  if (!FILE_TYPES.has(mode & S_IFMT)) throw new FormatError(`${where}: ${show(field)} has no valid file type`);
  if (hardlink && (mode & S_IFMT) === S_IFDIR) throw new FormatError(`${where}: a directory cannot be a hardlink`);
  return { mode, hardlink };
}

function parseMtime(field: Uint8Array, where: string): { sec: number; nsec: number } {
  const m = /^(-?[0-9]{1,16})\.([0-9]{1,9})$/.exec(ascii(field));
  if (!m) throw new FormatError(`${where}: ${show(field)} is not SECONDS.NANOSECONDS`);
  const sec = Number(m[1]);
  if (!Number.isSafeInteger(sec)) throw new FormatError(`${where}: ${show(field)} is out of range`);
  return { sec, nsec: Number(m[2]) };
}

function parseDigest(bytes: Uint8Array, where: string): Uint8Array {
  const hex = ascii(bytes);
  if (!/^[0-9a-fA-F]{64}$/.test(hex)) throw new FormatError(`${where}: ${show(bytes)} is not 64 hex digits`);
  const out = new Uint8Array(32);
  for (let i = 0; i < 32; i++) out[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return out;
}

/** A `-` field is absent (null); anything else is unescaped. */
function optional(field: Uint8Array, where: string, max = MAX_PATH): Uint8Array | null {
  if (field.length === 1 && field[0] === 0x2d) return null;
  return unescape(field, where, max);
}

const HEXVAL = (c: number) =>
  c >= 0x30 && c <= 0x39 ? c - 0x30 : (c | 0x20) >= 0x61 && (c | 0x20) <= 0x66 ? (c | 0x20) - 0x57 : -1;

/** Undoes the dumpfile escapes; `max` bounds the result's length. */
export function unescape(field: Uint8Array, where: string, max = MAX_PATH): Uint8Array {
  if (!field.includes(0x5c)) {
    if (field.length > max) throw new FormatError(`${where}: longer than ${max} bytes`);
    return field.slice();
  }
  const out = new Uint8Array(field.length);
  let n = 0;
  for (let i = 0; i < field.length; i++) {
    const c = field[i];
    if (c !== 0x5c) {
      out[n++] = c;
      continue;
    }
    const e = field[++i];
    switch (e) {
      case 0x5c:
        out[n++] = 0x5c;
        break;
      case 0x6e: // n
        out[n++] = 0x0a;
        break;
      case 0x72: // r
        out[n++] = 0x0d;
        break;
      case 0x74: // t
        out[n++] = 0x09;
        break;
      case 0x78: { // x
        const hi = i + 1 < field.length ? HEXVAL(field[i + 1]) : -1;
        const lo = i + 2 < field.length ? HEXVAL(field[i + 2]) : -1;
        if (hi < 0 || lo < 0) {
          throw new FormatError(
            `${where}: bad escape ${show(field.subarray(i - 1, i + 3))} (\\x needs two hex digits)`,
          );
        }
        out[n++] = hi * 16 + lo;
        i += 2;
        break;
      }
      default:
        throw new FormatError(
          `${where}: bad escape ${show(field.subarray(i - 1, i + 1))} (known: \\\\ \\n \\r \\t \\xNN)`,
        );
    }
  }
  if (n > max) throw new FormatError(`${where}: longer than ${max} bytes`);
  return out.slice(0, n);
}

/** Which escaping a field gets: `=` is escaped in xattr names and values only. */
type EscapeMode = "field" | "xattr";

/**
 * Escapes bytes as `composefs-info dump` does: `\\ \n \r \t`, `\xNN` for every byte
 * that is not a printable ASCII character other than space (and for `=` in xattrs).
 * A field that is exactly `-` becomes `\x2d` so that it does not read as absent;
 * an xattr value of `-` needs no such care.
 */
export function escape(bytes: Uint8Array, mode: EscapeMode = "field"): string {
  if (mode === "field" && bytes.length === 1 && bytes[0] === 0x2d) return "\\x2d";
  let s = "";
  let run = 0;
  for (let i = 0; i < bytes.length; i++) {
    const c = bytes[i];
    let esc: string | undefined;
    if (c === 0x5c) esc = "\\\\";
    else if (c === 0x0a) esc = "\\n";
    else if (c === 0x0d) esc = "\\r";
    else if (c === 0x09) esc = "\\t";
    else if (c <= 0x20 || c >= 0x7f || (c === 0x3d && mode === "xattr")) esc = `\\x${HEX2[c]}`;
    if (esc === undefined) continue;
    if (i > run) s += ascii(bytes.subarray(run, i));
    s += esc;
    run = i + 1;
  }
  if (run < bytes.length) s += ascii(bytes.subarray(run));
  return s;
}

const HEX2 = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));

function hex(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += HEX2[b];
  return s;
}

/** Formats one entry as a dumpfile line, without the newline. */
export function formatDumpLine(e: DumpEntry): string {
  const parts = [
    escape(e.path),
    String(e.size),
    (e.hardlink ? "@" : "") + e.mode.toString(8),
    String(e.nlink),
    String(e.uid),
    String(e.gid),
    String(e.rdev),
    `${e.mtime.sec}.${e.mtime.nsec}`,
    e.payload?.length ? escape(e.payload) : "-",
    e.content?.length ? escape(e.content) : "-",
    e.digest ? hex(e.digest) : "-",
  ];
  for (const x of e.xattrs) parts.push(`${escape(x.name, "xattr")}=${escape(x.value, "xattr")}`);
  return parts.join(" ");
}

/** Formats entries as a dumpfile, one line each, each ending with a newline. */
export function formatDumpfile(entries: Iterable<DumpEntry>): string {
  let s = "";
  for (const e of entries) s += formatDumpLine(e) + "\n";
  return s;
}

function ascii(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i += 8192) {
    s += String.fromCharCode.apply(null, bytes.subarray(i, i + 8192) as unknown as number[]);
  }
  return s;
}

/** A field for an error message, JSON-quoted, cut to 40 bytes. */
function show(bytes: Uint8Array): string {
  const cut = bytes.length > 40 ? ascii(bytes.subarray(0, 40)) + "..." : ascii(bytes);
  return JSON.stringify(cut).replace(/[\u007f-\u00ff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}
