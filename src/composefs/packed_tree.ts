/**
 * The composefs tree in a compact form, for trees of millions of entries: the
 * fields of every inode in typed-array columns, every directory entry in
 * columns too, names, symlink targets, inline contents and digests in byte
 * pools, and xattr sets interned (an inode holds the number of its set). A
 * directory's entries form a list, and a hash table over (directory, name)
 * finds one; an entry removed or replaced is marked dead and skipped. An inode
 * costs about 50 bytes and an entry 20 plus its name, where the object tree of
 * `tree.ts` (the form to build small trees in by hand) costs kilobytes.
 *
 * Inodes are numbered from 0 (the root directory); a hardlink is several entries
 * naming one inode. Entries and inodes that a removal left unreachable stay in
 * the columns; the writer and `walkPacked` (`tree_dump.ts`) only see what the
 * root reaches.
 *
 * Every column grows as the tree does; {@link PackedTree.bytes} is what they
 * take, and with a `limit` the tree refuses to grow past it (a
 * {@link LimitError}), so a command can keep within `--memory-limit`.
 *
 * @module
 */
import { FormatError, LimitError } from "../errors.ts";
import { BytePool, grown, PackedEntries } from "./packed_entries.ts";
import { XattrSets } from "./xattr_sets.ts";
import { compareBytes, digestOfObjectPath, type Inode, objectPath, quotePath, type Xattr } from "./tree.ts";

/** An inode's kind (the same names as the object tree's). */
export type Kind = Inode["type"];

const KINDS: readonly Kind[] = ["directory", "file", "symlink", "chardev", "blockdev", "fifo", "socket"];
const DIR = 0;
const FILE = 1;
const SYMLINK = 2;
const CHARDEV = 3;
const BLOCKDEV = 4;

/** File flags: the content is an object outside the image (else inline). */
const EXTERNAL = 1;
/** External file: its 32-byte fs-verity digest starts its data. */
const HAS_DIGEST = 2;
/** External file: its payload is some bytes (not an object path), after the digest. */
const HAS_PAYLOAD = 4;
/** External file: its payload is the object path of a digest, kept as the digest's 32 bytes... */
const PAYLOAD_IS_PATH = 8;
/** ...after the file's own digest when it is not that one (else the file's own digest is the payload's). */
const PATH_DIGEST_STORED = 16;

/** The metadata of an inode as the packed tree keeps it: its xattrs are an interned set. */
export interface InodeMeta {
  /** Permission bits with setuid, setgid and sticky (0..0o7777). */
  mode: number;
  uid: number;
  gid: number;
  /** mtime: whole seconds (may be negative) and nanoseconds. */
  sec: number;
  nsec: number;
  /** The xattr set (see {@link PackedTree.internXattrs}); 0 is none. */
  xattrs: number;
}

/** Options of a {@link PackedTree}. */
export interface PackedTreeOptions {
  /** Bytes the tree may take (columns, pools, xattr sets); past it, growing is a {@link LimitError}. */
  limit?: number;
  /** How the limit is named in the error (default "the memory limit"). */
  limitName?: string;
}

const utf8 = new TextEncoder();

/** The composefs tree, packed; see the module documentation. */
export class PackedTree {
  /** The root directory's inode. */
  static readonly ROOT = 0;

  // Inode columns.
  #kind = new Uint8Array(0);
  #mode = new Uint16Array(0);
  #uid = new Uint32Array(0);
  #gid = new Uint32Array(0);
  #sec = new Float64Array(0);
  #nsec = new Uint32Array(0);
  #size = new Float64Array(0);
  #xattrs = new Uint32Array(0);
  /** Where the inode's data is in the blob pool, and its length (inline content, target, payload). */
  #data = new Uint32Array(0);
  #dataLen = new Uint32Array(0);
  #rdev = new Uint32Array(0);
  #flags = new Uint8Array(0);
  #inodes = 0;

  readonly #entries = new PackedEntries((n: number) => this.#ensure(n));
  #blobs = new BytePool();

  readonly #sets = new XattrSets((n: number) => this.#ensure(n));

  readonly #limit: number;
  readonly #limitName: string;

  constructor(root: InodeMeta, options: PackedTreeOptions = {}) {
    this.#limit = options.limit ?? Infinity;
    this.#limitName = options.limitName ?? "the memory limit";
    this.#growInodes(1 << 10);
    this.addDirectory(root);
  }

  /** Bytes the tree's columns, pools and xattr sets take. */
  get bytes(): number {
    return this.#kind.length * 55 + this.#entries.bytes + this.#blobs.bytes.length + this.#sets.bytes;
  }

  /** Inodes made so far (reachable or not); ids are 0 to this less one. */
  get inodeCount(): number {
    return this.#inodes;
  }

  /** Entries made so far (alive or not). */
  get entryCount(): number {
    return this.#entries.count;
  }

  /** Throws the {@link LimitError} when `more` bytes would take the tree past its limit. */
  #ensure(more: number): void {
    if (this.bytes + more > this.#limit) {
      throw new LimitError(
        `a composefs tree of ${this.#inodes} inodes and ${this.#entries.count} entries needs more than ` +
          `${this.#limitName}; raise it`,
      );
    }
  }

  #growInodes(capacity: number): void {
    this.#ensure((capacity - this.#kind.length) * 55);
    this.#kind = grown(this.#kind, capacity);
    this.#mode = grown(this.#mode, capacity);
    this.#uid = grown(this.#uid, capacity);
    this.#gid = grown(this.#gid, capacity);
    this.#sec = grown(this.#sec, capacity);
    this.#nsec = grown(this.#nsec, capacity);
    this.#size = grown(this.#size, capacity);
    this.#xattrs = grown(this.#xattrs, capacity);
    this.#data = grown(this.#data, capacity);
    this.#dataLen = grown(this.#dataLen, capacity);
    this.#rdev = grown(this.#rdev, capacity);
    this.#flags = grown(this.#flags, capacity);
  }

  #addInode(kind: number, m: InodeMeta): number {
    const id = this.#inodes;
    if (id === this.#kind.length) this.#growInodes(Math.ceil(id * 1.5));
    this.#kind[id] = kind;
    this.#inodes++;
    this.setMeta(id, m);
    this.#rdev[id] = 0;
    return id;
  }

  /** Sets an inode's metadata (a directory merged with a later layer's takes its metadata). */
  setMeta(id: number, m: InodeMeta): void {
    if (!(Number.isInteger(m.mode) && m.mode >= 0 && m.mode <= 0o7777)) {
      throw new FormatError(`mode ${m.mode} is not permission bits (0..0o7777)`);
    }
    if (!(Number.isInteger(m.uid) && m.uid >= 0 && m.uid <= 0xffffffff)) {
      throw new FormatError(`uid ${m.uid} is out of range`);
    }
    if (!(Number.isInteger(m.gid) && m.gid >= 0 && m.gid <= 0xffffffff)) {
      throw new FormatError(`gid ${m.gid} is out of range`);
    }
    if (!(Number.isSafeInteger(m.sec) && Number.isInteger(m.nsec) && m.nsec >= 0 && m.nsec <= 999_999_999)) {
      throw new FormatError("mtime is out of range");
    }
    this.#mode[id] = m.mode;
    this.#uid[id] = m.uid;
    this.#gid[id] = m.gid;
    this.#sec[id] = m.sec;
    this.#nsec[id] = m.nsec;
    this.#xattrs[id] = m.xattrs;
  }

  /** A new directory, with no entries. */
  addDirectory(m: InodeMeta): number {
    return this.#addInode(DIR, m);
  }

  /** A regular file stored in the image. */
  addInlineFile(m: InodeMeta, content: Uint8Array): number {
    const id = this.#addInode(FILE, m);
    this.#data[id] = this.#blobs.add(content, (n) => this.#ensure(n));
    this.#dataLen[id] = content.length;
    this.#size[id] = content.length;
    return id;
  }

  /**
   * A regular file of `size` bytes (more than zero) whose content is an object
   * outside the image: its fs-verity digest (32 bytes, or null when unknown) and
   * its path in the store (default: the digest's `XX/rest-of-hex`, none without
   * a digest).
   */
  addExternalFile(m: InodeMeta, size: number, digest: Uint8Array | null, payload?: Uint8Array | null): number {
    if (!(Number.isSafeInteger(size) && size > 0)) throw new FormatError(`size ${size} is out of range`);
    if (digest && digest.length !== 32) throw new FormatError("the fs-verity digest is not 32 bytes");
    const id = this.#addInode(FILE, m);
    let flags = EXTERNAL;
    const ensure = (n: number) => this.#ensure(n);
    this.#data[id] = this.#blobs.length;
    if (digest) {
      flags |= HAS_DIGEST;
      this.#blobs.add(digest, ensure);
    }
    const pathDigest = payload === undefined ? digest : payload?.length ? digestOfObjectPath(payload) : null;
    if (pathDigest) {
      flags |= PAYLOAD_IS_PATH;
      if (!digest || compareBytes(pathDigest, digest) !== 0) {
        flags |= PATH_DIGEST_STORED;
        this.#blobs.add(pathDigest, ensure);
      }
    } else if (payload?.length) {
      flags |= HAS_PAYLOAD;
      this.#blobs.add(payload, ensure);
      this.#dataLen[id] = payload.length;
    }
    this.#flags[id] = flags;
    this.#size[id] = size;
    return id;
  }

  /** A symbolic link to `target`. */
  addSymlink(m: InodeMeta, target: Uint8Array): number {
    const id = this.#addInode(SYMLINK, m);
    this.#data[id] = this.#blobs.add(target, (n) => this.#ensure(n));
    this.#dataLen[id] = target.length;
    this.#size[id] = target.length;
    return id;
  }

  /** A device node (a character device 0:0 is an overlayfs whiteout). */
  addDevice(m: InodeMeta, type: "chardev" | "blockdev", rdev: number): number {
    if (!(Number.isInteger(rdev) && rdev >= 0 && rdev <= 0xffffffff)) {
      throw new FormatError(`device number ${rdev} is out of range`);
    }
    const id = this.#addInode(type === "chardev" ? CHARDEV : BLOCKDEV, m);
    this.#rdev[id] = rdev;
    return id;
  }

  /** A fifo or a socket. */
  addSpecial(m: InodeMeta, type: "fifo" | "socket"): number {
    return this.#addInode(KINDS.indexOf(type), m);
  }

  /** The id of the xattr set holding `xattrs` (names unique), interned: equal sets get one id. */
  internXattrs(xattrs: Iterable<Xattr>): number {
    return this.#sets.intern(xattrs);
  }

  /** The xattrs of set `id`, sorted by name. Do not modify. */
  xattrSet(id: number): readonly Xattr[] {
    return this.#sets.get(id);
  }

  /** Keeps, in every inode, only the xattrs whose names `keep` accepts. */
  filterXattrs(keep: (name: Uint8Array) => boolean): void {
    const mapped = this.#sets.filtered(keep);
    for (let i = 0; i < this.#inodes; i++) this.#xattrs[i] = mapped[this.#xattrs[i]];
  }

  // Reading inodes.

  /** The kind of inode `id`. */
  kind(id: number): Kind {
    return KINDS[this.#kind[id]];
  }

  /** True when inode `id` is a directory. */
  isDirectory(id: number): boolean {
    return this.#kind[id] === DIR;
  }

  /** The metadata of inode `id`. */
  meta(id: number): InodeMeta {
    return {
      mode: this.#mode[id],
      uid: this.#uid[id],
      gid: this.#gid[id],
      sec: this.#sec[id],
      nsec: this.#nsec[id],
      xattrs: this.#xattrs[id],
    };
  }

  /** Permission bits. */
  mode(id: number): number {
    return this.#mode[id];
  }

  uid(id: number): number {
    return this.#uid[id];
  }

  gid(id: number): number {
    return this.#gid[id];
  }

  /** mtime seconds. */
  sec(id: number): number {
    return this.#sec[id];
  }

  /** mtime nanoseconds. */
  nsec(id: number): number {
    return this.#nsec[id];
  }

  /** The inode's xattr set id. */
  xattrs(id: number): number {
    return this.#xattrs[id];
  }

  /** A regular file's size, or a symlink target's length; 0 for other kinds. */
  size(id: number): number {
    return this.#size[id];
  }

  /** A device's number (0 for other kinds). */
  rdev(id: number): number {
    const k = this.#kind[id];
    return k === CHARDEV || k === BLOCKDEV ? this.#rdev[id] : 0;
  }

  /** True for a regular file whose content is outside the image. */
  isExternal(id: number): boolean {
    return this.#kind[id] === FILE && (this.#flags[id] & EXTERNAL) !== 0;
  }

  /** An inline file's content (a view into the tree), or null. */
  content(id: number): Uint8Array | null {
    if (this.#kind[id] !== FILE || this.#flags[id] & EXTERNAL) return null;
    return this.#blobs.view(this.#data[id], this.#dataLen[id]);
  }

  /** A symlink's target (a view into the tree). */
  target(id: number): Uint8Array {
    return this.#blobs.view(this.#data[id], this.#dataLen[id]);
  }

  /** An external file's fs-verity digest (a view into the tree), or null. */
  digest(id: number): Uint8Array | null {
    const at = this.digestOffset(id);
    return at < 0 ? null : this.#blobs.view(at, 32);
  }

  /** An external file's path in the store (its payload), or null. */
  payload(id: number): Uint8Array | null {
    const path = this.payloadDigestOffset(id);
    if (path >= 0) return utf8.encode(objectPath(this.#blobs.view(path, 32)));
    const at = this.payloadOffset(id);
    return at < 0 ? null : this.#blobs.view(at, this.#dataLen[id]);
  }

  /** The pool {@link digestOffset} and the like point into; valid until the tree grows. */
  get pool(): Uint8Array {
    return this.#blobs.bytes;
  }

  /** Where an external file's digest is in {@link pool}, or -1. */
  digestOffset(id: number): number {
    return this.#kind[id] === FILE && this.#flags[id] & HAS_DIGEST ? this.#data[id] : -1;
  }

  /** Where the digest whose object path an external file's payload is lies in {@link pool}, or -1. */
  payloadDigestOffset(id: number): number {
    const f = this.#flags[id];
    if (this.#kind[id] !== FILE || !(f & PAYLOAD_IS_PATH)) return -1;
    return this.#data[id] + (f & PATH_DIGEST_STORED && f & HAS_DIGEST ? 32 : 0);
  }

  /** Where an external file's payload is in {@link pool} when it is not an object path (its length: {@link payloadLength}), or -1. */
  payloadOffset(id: number): number {
    const f = this.#flags[id];
    return this.#kind[id] === FILE && f & HAS_PAYLOAD ? this.#data[id] + (f & HAS_DIGEST ? 32 : 0) : -1;
  }

  /** The length of the payload at {@link payloadOffset}. */
  payloadLength(id: number): number {
    return this.#dataLen[id];
  }

  // Directory entries.

  /** The entry named `name` in directory `dir`, or -1. */
  lookup(dir: number, name: Uint8Array): number {
    return this.#entries.lookup(dir, name);
  }

  /** The inode named `name` in directory `dir`, or -1. */
  child(dir: number, name: Uint8Array): number {
    const e = this.#entries.lookup(dir, name);
    return e < 0 ? -1 : this.#entries.inode(e);
  }

  /**
   * Names inode `inode` `name` in directory `dir`, replacing what had that name;
   * returns the entry. The name must be one path component (see `nameProblem`).
   */
  link(dir: number, name: Uint8Array, inode: number): number {
    if (this.#kind[dir] !== DIR) throw new FormatError(`${quotePath(name)}: its parent is not a directory`);
    return this.#entries.link(dir, name, inode);
  }

  /** Removes the entry `name` from directory `dir`; true when it was there. */
  unlink(dir: number, name: Uint8Array): boolean {
    return this.#entries.unlink(dir, name);
  }

  /** Removes every entry of directory `dir`. */
  clear(dir: number): void {
    this.#entries.clear(dir);
  }

  /** The live entries of directory `dir`, in no particular order. */
  entries(dir: number): Generator<number> {
    return this.#entries.entries(dir);
  }

  /** The entries of directory `dir` sorted by name, bytewise. */
  sortedEntries(dir: number): Uint32Array {
    return this.#entries.sortedEntries(dir);
  }

  /** The inode an entry names. */
  entryInode(e: number): number {
    return this.#entries.inode(e);
  }

  /** The directory an entry is in. */
  entryParent(e: number): number {
    return this.#entries.parent(e);
  }

  /** An entry's name (a view into the tree: copy it to keep it). */
  entryName(e: number): Uint8Array {
    return this.#entries.name(e);
  }
}
