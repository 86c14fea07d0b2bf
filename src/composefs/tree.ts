/**
 * The in-memory file tree a composefs image describes: directories with named
 * entries, regular files (inline, or external: a size and the fs-verity digest of
 * an object in the store), symlinks, device nodes, fifos and sockets, each with its
 * owner, permissions, nanosecond mtime and xattrs.
 *
 * Names, symlink targets, xattr names and values, and inline contents are bytes
 * (`Uint8Array`), as on disk; the functions that take a name also accept a string,
 * encoded as UTF-8. Entries are kept sorted by name, bytewise, as EROFS stores them.
 *
 * A hardlink is the same inode object in several directory entries: the EROFS
 * writer gives it one inode and counts its links (link counts are never stored).
 * Its first name, depth-first in name order, is the one a dumpfile lists in full.
 * Directories may not be shared.
 *
 * The tree is built by hand with {@link Directory.set} and the leaf constructors
 * ({@link regularFile}, {@link inlineFile}, {@link externalFile}, {@link symlink},
 * {@link device}, {@link fifo}, {@link socket}), or from a parsed dumpfile
 * (`tree_dump.ts`, which also lists a tree back as dumpfile entries).
 *
 * @module
 */
import { FormatError } from "../errors.ts";
import { S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFREG, S_IFSOCK } from "./dumpfile.ts";
import { fsverityDigest, toHex } from "./fsverity.ts";

/** A point in time: whole seconds since the epoch (may be negative) and nanoseconds (0..999999999). */
export interface Timespec {
  sec: number;
  nsec: number;
}

/** What every inode has besides its content. */
export interface Meta {
  /** Permission bits with setuid, setgid and sticky (`st_mode & 0o7777`), without the file type. */
  mode: number;
  uid: number;
  gid: number;
  mtime: Timespec;
  xattrs: Xattrs;
}

/** A name given as bytes, or as a string to encode as UTF-8. */
export type Name = Uint8Array | string;

const utf8 = new TextEncoder();
const latin1 = new TextDecoder("latin1");

/** The bytes of a {@link Name}. */
export function nameBytes(name: Name): Uint8Array {
  return typeof name === "string" ? utf8.encode(name) : name;
}

/** A string holding one char per byte: a lossless Map key that sorts like the bytes. */
export function byteKey(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i += 8192) {
    s += String.fromCharCode.apply(null, bytes.subarray(i, i + 8192) as unknown as number[]);
  }
  return s;
}

/** Bytewise comparison (what `strcmp` and `memcmp` give), for sorting names. */
export function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    if (a[i] !== b[i]) return a[i] - b[i];
  }
  return a.length - b.length;
}

/** One extended attribute. */
export interface Xattr {
  name: Uint8Array;
  value: Uint8Array;
}

/** The xattrs of an inode: names are unique; iteration is in insertion order. */
export class Xattrs {
  #map = new Map<string, Xattr>();

  /** Sets (or replaces) one xattr. */
  set(name: Name, value: Uint8Array | string): this {
    const n = nameBytes(name);
    this.#map.set(byteKey(n), { name: n, value: nameBytes(value) });
    return this;
  }

  /** The value of `name`, or undefined. */
  get(name: Name): Uint8Array | undefined {
    return this.#map.get(byteKey(nameBytes(name)))?.value;
  }

  /** Removes `name`; true when it was there. */
  delete(name: Name): boolean {
    return this.#map.delete(byteKey(nameBytes(name)));
  }

  /** Number of xattrs. */
  get size(): number {
    return this.#map.size;
  }

  /** The xattrs in insertion order. */
  [Symbol.iterator](): IterableIterator<Xattr> {
    return this.#map.values();
  }

  /** The xattrs sorted by name, bytewise. */
  sorted(): Xattr[] {
    return [...this.#map.values()].sort((a, b) => compareBytes(a.name, b.name));
  }

  /** A copy that shares no state with this one (values are not copied: treat them as immutable). */
  clone(): Xattrs {
    const c = new Xattrs();
    for (const x of this) c.set(x.name, x.value);
    return c;
  }
}

/** Metadata with defaults: mode 0o644 (0o755 for directories is the caller's choice), root, epoch, no xattrs. */
export function meta(m: Partial<Meta> = {}): Meta {
  return {
    mode: m.mode ?? 0o644,
    uid: m.uid ?? 0,
    gid: m.gid ?? 0,
    mtime: m.mtime ?? { sec: 0, nsec: 0 },
    xattrs: m.xattrs ?? new Xattrs(),
  };
}

/**
 * A regular file. Inline files carry their `content` (and `size` is its length);
 * external ones carry `size`, the fs-verity `digest` of the object that holds the
 * bytes, and `payload`, the object's path in the store (`XX/rest-of-hex`).
 */
export interface RegularFile {
  type: "file";
  meta: Meta;
  size: number;
  /** The bytes of an inline file; null for an external one. */
  content: Uint8Array | null;
  /** The fs-verity SHA-256 digest of an external file (32 bytes), or null when unknown. */
  digest: Uint8Array | null;
  /** Where an external file's object is, relative to the store; null for none. */
  payload: Uint8Array | null;
}

/** A symbolic link. */
export interface Symlink {
  type: "symlink";
  meta: Meta;
  target: Uint8Array;
}

/** A character or block device; a character device with `rdev` 0 is an overlayfs whiteout. */
export interface DeviceNode {
  type: "chardev" | "blockdev";
  meta: Meta;
  rdev: number;
}

/** A fifo or a socket. */
export interface SpecialNode {
  type: "fifo" | "socket";
  meta: Meta;
}

/** Any inode but a directory. */
export type Leaf = RegularFile | Symlink | DeviceNode | SpecialNode;
/** Any inode. */
export type Inode = Directory | Leaf;

/** The `st_mode` file-type bits of each kind of inode (what EROFS inodes and dumpfiles carry). */
export const INODE_TYPE_BITS: Readonly<Record<Inode["type"], number>> = {
  file: S_IFREG,
  directory: S_IFDIR,
  symlink: S_IFLNK,
  chardev: S_IFCHR,
  blockdev: S_IFBLK,
  fifo: S_IFIFO,
  socket: S_IFSOCK,
};

/** A file stored in the image itself. */
export function inlineFile(m: Meta, content: Uint8Array | string): RegularFile {
  const c = nameBytes(content);
  return { type: "file", meta: m, size: c.length, content: c, digest: null, payload: null };
}

/**
 * A file whose bytes are the object named by `digest` (32 bytes) in the store.
 * `payload` defaults to the store path composefs uses, `XX/rest-of-hex`.
 */
export function externalFile(m: Meta, size: number, digest: Uint8Array, payload?: Uint8Array | string): RegularFile {
  return {
    type: "file",
    meta: m,
    size,
    content: null,
    digest,
    payload: payload === undefined ? utf8.encode(objectPath(digest)) : nameBytes(payload),
  };
}

/**
 * Files of at most this many bytes are stored in the image itself; larger ones in
 * the object store. The threshold mkcomposefs and composefs-rs use when they build
 * an image from files (a dumpfile may inline any size).
 */
export const INLINE_CONTENT_MAX = 64;

/**
 * A regular file with these bytes, stored as composefs stores files it builds:
 * inline up to {@link INLINE_CONTENT_MAX} bytes, else external, named by its
 * fs-verity digest (the caller puts `content` in the store at {@link objectPath}).
 */
export function regularFile(m: Meta, content: Uint8Array): RegularFile {
  return content.length <= INLINE_CONTENT_MAX
    ? inlineFile(m, content)
    : externalFile(m, content.length, fsverityDigest(content));
}

/** The path of an object in a composefs store: `XX/rest-of-hex` for the digest's hex. */
export function objectPath(digest: Uint8Array): string {
  const hex = toHex(digest);
  return `${hex.slice(0, 2)}/${hex.slice(2)}`;
}

/** The digest whose {@link objectPath} `path` is (lowercase hex), or null when it is not one. */
export function digestOfObjectPath(path: Uint8Array): Uint8Array | null {
  if (path.length !== 65 || path[2] !== 0x2f) return null;
  const out = new Uint8Array(32);
  for (let i = 0; i < 32; i++) {
    const at = i === 0 ? 0 : 2 * i + 1; // the hex digits, skipping the "/" after the first two
    const hi = HEX_DIGIT[path[at]];
    const lo = HEX_DIGIT[path[at + 1]];
    if (hi < 0 || lo < 0) return null;
    out[i] = hi * 16 + lo;
  }
  return out;
}

const HEX_DIGIT = Int8Array.from(
  { length: 256 },
  (_, c) => c >= 0x30 && c <= 0x39 ? c - 0x30 : c >= 0x61 && c <= 0x66 ? c - 0x57 : -1,
);

/** A symbolic link to `target`. */
export function symlink(m: Meta, target: Name): Symlink {
  return { type: "symlink", meta: m, target: nameBytes(target) };
}

/** A device node. */
export function device(m: Meta, type: "chardev" | "blockdev", rdev: number): DeviceNode {
  return { type, meta: m, rdev };
}

/** A fifo. */
export function fifo(m: Meta): SpecialNode {
  return { type: "fifo", meta: m };
}

/** A socket. */
export function socket(m: Meta): SpecialNode {
  return { type: "socket", meta: m };
}

/** One entry of a directory. */
export interface DirEntry {
  name: Uint8Array;
  inode: Inode;
}

/** A directory: its metadata and its entries, unique by name. */
export class Directory {
  readonly type = "directory";
  meta: Meta;
  #entries = new Map<string, DirEntry>();
  #sorted: DirEntry[] | null = null;

  constructor(m: Meta = meta({ mode: 0o755 })) {
    this.meta = m;
  }

  /** The inode named `name`, or undefined. */
  get(name: Name): Inode | undefined {
    return this.#entries.get(byteKey(nameBytes(name)))?.inode;
  }

  /**
   * Adds or replaces the entry `name`. The name must be a single path component:
   * not empty, not `.` or `..`, without `/` or NUL, at most 255 bytes.
   */
  set(name: Name, inode: Inode): this {
    const n = nameBytes(name);
    checkName(n);
    this.#entries.set(byteKey(n), { name: n, inode });
    this.#sorted = null;
    return this;
  }

  /** Removes the entry `name`; true when it was there. */
  delete(name: Name): boolean {
    const removed = this.#entries.delete(byteKey(nameBytes(name)));
    if (removed) this.#sorted = null;
    return removed;
  }

  /** Number of entries. */
  get size(): number {
    return this.#entries.size;
  }

  /** The entries sorted by name, bytewise. Do not modify the array. */
  entries(): readonly DirEntry[] {
    this.#sorted ??= [...this.#entries.values()].sort((a, b) => compareBytes(a.name, b.name));
    return this.#sorted;
  }
}

/** Longest name EROFS (and composefs) accept for one path component. */
export const MAX_NAME_LENGTH = 255;

/** A check for a name of one path component: not empty, `.`, `..`, no `/` or NUL, at most 255 bytes. */
export function nameProblem(n: Uint8Array): string | undefined {
  return n.length === 0
    ? "is empty"
    : n.length > MAX_NAME_LENGTH
    ? `is longer than ${MAX_NAME_LENGTH} bytes`
    : (n.length === 1 && n[0] === 0x2e) || (n.length === 2 && n[0] === 0x2e && n[1] === 0x2e)
    ? "is . or .."
    : n.includes(0x2f)
    ? "contains /"
    : n.includes(0)
    ? "contains NUL"
    : undefined;
}

function checkName(n: Uint8Array): void {
  const bad = nameProblem(n);
  if (bad) throw new FormatError(`directory entry name ${JSON.stringify(latin1.decode(n))} ${bad}`);
}

/**
 * Walks the tree depth-first with each directory's entries in name order: parents
 * before children, as a dumpfile lists them. Yields each entry with its absolute
 * path (bytes); the root comes first, with path `/`.
 */
export function* walk(root: Directory): Generator<{ path: Uint8Array; inode: Inode }> {
  yield { path: Uint8Array.of(0x2f), inode: root };
  yield* walkDir(root, new Uint8Array(0));
}

function* walkDir(dir: Directory, prefix: Uint8Array): Generator<{ path: Uint8Array; inode: Inode }> {
  for (const e of dir.entries()) {
    const path = childPath(prefix, e.name);
    yield { path, inode: e.inode };
    if (e.inode.type === "directory") yield* walkDir(e.inode, path);
  }
}

/** `parent/name`, for a parent path without a trailing slash (the root is the empty path). */
export function childPath(parent: Uint8Array, name: Uint8Array): Uint8Array {
  const path = new Uint8Array(parent.length + 1 + name.length);
  path.set(parent);
  path[parent.length] = 0x2f;
  path.set(name, parent.length + 1);
  return path;
}

/** A path for an error message: JSON-quoted, bytes that are not UTF-8 shown as latin1. */
export function quotePath(path: Uint8Array): string {
  let s: string;
  try {
    s = new TextDecoder("utf-8", { fatal: true }).decode(path);
  } catch {
    s = latin1.decode(path);
  }
  return JSON.stringify(s).replace(
    /[\u0080-\u009f\u202a-\u202e\u2066-\u2069]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}
