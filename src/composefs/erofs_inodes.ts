/**
 * The inode table of a composefs EROFS image, before layout: the tree numbered
 * breadth-first as libcomposefs numbers it, with the rewrites libcomposefs applies
 * so that overlayfs reads the image as composefs means it:
 * - every `trusted.overlay.*` xattr is escaped to `trusted.overlay.overlay.*`, so
 *   overlayfs reads it as the file's own, not as an instruction;
 * - an external regular file becomes a metacopy stub: `trusted.overlay.metacopy`
 *   (version 0, length 36, flags 0, algorithm 1, then the fs-verity digest; empty
 *   without a digest) and `trusted.overlay.redirect` (`/` + payload);
 * - a whiteout (character device 0:0) becomes an empty regular file with
 *   `trusted.overlay.overlay.whiteout` and `user.overlay.whiteout`, and its directory
 *   gets `trusted.overlay.overlay.whiteouts`, `user.overlay.whiteouts`,
 *   `trusted.overlay.overlay.opaque=x` and `user.overlay.opaque=x` (the last two are
 *   format version 1's, and a tree with a whiteout is always written as version 1);
 * - the root gets `trusted.overlay.opaque=y`, and 256 whiteout devices `00`..`ff`
 *   (the names it does not already have; owner, mtime and SELinux label of the root).
 *
 * Numbering: the root is inode 0; each directory, in the order they were numbered,
 * numbers its entries in name order (bytewise), `.` and `..` aside. A hardlinked
 * inode is numbered at its first name in depth-first name order (where a dumpfile
 * lists it), and its other names point to that inode.
 *
 * Everything is kept in typed arrays indexed by node (the image's inode number)
 * or by the packed tree's inode and entry ids, so that a tree of millions of
 * entries costs some tens of bytes per entry here. A node's xattrs are made when
 * asked for ({@link InodeTable.xattrs}).
 *
 * @module
 */
import { FormatError } from "../errors.ts";
import { startsWith } from "./erofs_format.ts";
import { PackedTree } from "./packed_tree.ts";
import { type Inode, quotePath, type Xattr } from "./tree.ts";

const te = new TextEncoder();
const OVERLAY_PREFIX = te.encode("trusted.overlay.");
const OVERLAY_ESCAPED_PREFIX = te.encode("trusted.overlay.overlay.");
/** The xattr names the rewrites set (and the writer looks for). */
export const XATTR = {
  metacopy: te.encode("trusted.overlay.metacopy"),
  redirect: te.encode("trusted.overlay.redirect"),
  opaque: te.encode("trusted.overlay.opaque"),
  escapedWhiteout: te.encode("trusted.overlay.overlay.whiteout"),
  escapedWhiteouts: te.encode("trusted.overlay.overlay.whiteouts"),
  escapedOpaque: te.encode("trusted.overlay.overlay.opaque"),
  userWhiteout: te.encode("user.overlay.whiteout"),
  userWhiteouts: te.encode("user.overlay.whiteouts"),
  userOpaque: te.encode("user.overlay.opaque"),
  selinux: te.encode("security.selinux"),
  aclAccess: te.encode("system.posix_acl_access"),
  aclDefault: te.encode("system.posix_acl_default"),
};
const EMPTY = new Uint8Array(0);
const Y = te.encode("y");
const X = te.encode("x");
const WHITEOUT_XATTRS: Xattr[] = [
  { name: XATTR.escapedWhiteout, value: EMPTY },
  { name: XATTR.userWhiteout, value: EMPTY },
];
const DIR_WHITEOUT_XATTRS: Xattr[] = [
  { name: XATTR.escapedWhiteouts, value: EMPTY },
  { name: XATTR.userWhiteouts, value: EMPTY },
  { name: XATTR.escapedOpaque, value: X },
  { name: XATTR.userOpaque, value: X },
];
const ROOT_XATTRS: Xattr[] = [{ name: XATTR.opaque, value: Y }];

const NONE = 0xffffffff;
/** Node flags. */
const STUB = 1;
const WHITEOUT = 2;
const HAS_WHITEOUTS = 4;

/** The names of the root's whiteout devices, `00`..`ff`. */
const STUB_NAMES = Array.from({ length: 256 }, (_, i) => te.encode(i.toString(16).padStart(2, "0")));

/** Bytewise comparison. */
function compare(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return a.length - b.length;
}

/**
 * The inodes of an image: what each node (image inode, numbered breadth-first)
 * is, its link count, and each directory's entries in name order. Directory
 * entries are the packed tree's entry ids; the root's whiteout devices are the
 * ids from `tree.entryCount` on (entry `tree.entryCount + k` names device `k`).
 */
export class InodeTable {
  /** Number of nodes (the image's inode count). */
  readonly count: number;
  /** True when the tree holds a whiteout (the image is then always format version 1). */
  readonly hasWhiteout: boolean;
  /** Node → packed tree inode (a whiteout device: `tree.inodeCount + k`). */
  readonly #inodeOf: Uint32Array;
  /** Packed inode (and device) → node, or -1. */
  readonly #nodeOf: Int32Array;
  /** Node → the entry that numbered it (NONE for the root). */
  readonly #entryOf: Uint32Array;
  readonly #nlink: Uint32Array;
  readonly #flags: Uint8Array;
  /** Packed directory inode → where its sorted entries start in {@link #children}, and how many. */
  readonly #childStart: Uint32Array;
  readonly #childCount: Uint32Array;
  readonly #children: Uint32Array;
  /** Escaped and sorted xattr sets, by set id. */
  readonly #escaped = new Map<number, Xattr[]>();

  constructor(readonly tree: PackedTree) {
    const inodes = tree.inodeCount;
    const entries = tree.entryCount;
    const isDir = (i: number) => i < inodes && tree.isDirectory(i);
    const name = (e: number) => (e >= entries ? STUB_NAMES[e - entries] : tree.entryName(e));
    const target = (e: number) => (e >= entries ? inodes + e - entries : tree.entryInode(e));

    // Each directory's entries in name order, breadth-first from the root (the root with its whiteout devices).
    this.#childStart = new Uint32Array(inodes);
    this.#childCount = new Uint32Array(inodes);
    let children = new Uint32Array(Math.max(16, entries + 256));
    let filled = 0;
    const seenDir = new Uint8Array(inodes);
    seenDir[PackedTree.ROOT] = 1;
    const queue: number[] = [PackedTree.ROOT];
    for (let q = 0; q < queue.length; q++) {
      const dir = queue[q];
      let sorted = tree.sortedEntries(dir);
      if (dir === PackedTree.ROOT) {
        const stubs: number[] = [];
        for (let k = 0; k < 256; k++) if (tree.lookup(dir, STUB_NAMES[k]) < 0) stubs.push(entries + k);
        const all = new Uint32Array(sorted.length + stubs.length);
        all.set(sorted);
        all.set(stubs, sorted.length);
        sorted = all.sort((a, b) => compare(name(a), name(b)));
      }
      if (filled + sorted.length > children.length) {
        const bigger = new Uint32Array(Math.max(filled + sorted.length, children.length * 2));
        bigger.set(children.subarray(0, filled));
        children = bigger;
      }
      this.#childStart[dir] = filled;
      this.#childCount[dir] = sorted.length;
      children.set(sorted, filled);
      filled += sorted.length;
      for (const e of sorted) {
        const i = target(e);
        if (!isDir(i)) continue;
        if (seenDir[i]) throw new FormatError(`directory ${this.#entryPath(e)} appears twice in the tree`);
        seenDir[i] = 1;
        queue.push(i);
      }
    }
    this.#children = children;

    // Link counts, and the first name of each leaf depth-first in name order (where a dumpfile lists it).
    const links = new Uint32Array(inodes);
    const first = new Uint32Array(inodes).fill(NONE);
    const dirs: number[] = [PackedTree.ROOT];
    const cursor: number[] = [this.#childStart[PackedTree.ROOT]];
    while (dirs.length) {
      const dir = dirs[dirs.length - 1];
      const c = cursor[cursor.length - 1];
      if (c >= this.#childStart[dir] + this.#childCount[dir]) {
        dirs.pop();
        cursor.pop();
        continue;
      }
      cursor[cursor.length - 1]++;
      const e = children[c];
      if (e >= entries) continue;
      const i = tree.entryInode(e);
      if (tree.isDirectory(i)) {
        dirs.push(i);
        cursor.push(this.#childStart[i]);
        continue;
      }
      if (links[i]++ === 0) first[i] = e;
    }

    // Breadth-first numbering.
    const maxNodes = inodes + 256;
    this.#inodeOf = new Uint32Array(maxNodes);
    this.#nodeOf = new Int32Array(maxNodes).fill(-1);
    this.#entryOf = new Uint32Array(maxNodes);
    this.#nlink = new Uint32Array(maxNodes);
    this.#flags = new Uint8Array(maxNodes);
    let count = 1;
    this.#nodeOf[PackedTree.ROOT] = 0;
    this.#entryOf[0] = NONE;
    let hasWhiteout = false;
    for (let node = 0; node < count; node++) {
      const dir = this.#inodeOf[node];
      if (!isDir(dir)) continue;
      const start = this.#childStart[dir];
      const end = start + this.#childCount[dir];
      let subdirs = 0;
      for (let c = start; c < end; c++) {
        const e = children[c];
        const i = target(e);
        let nlink: number;
        if (e >= entries) {
          nlink = 1;
        } else if (tree.isDirectory(i)) {
          subdirs++;
          nlink = 0; // set when the directory is numbered
        } else if (first[i] === e) {
          nlink = links[i];
        } else {
          continue; // another name of a hardlinked inode
        }
        const n = count++;
        this.#inodeOf[n] = i;
        this.#nodeOf[i] = n;
        this.#entryOf[n] = e;
        this.#nlink[n] = nlink;
        if (e >= entries) {
          this.#flags[n] = STUB;
        } else if (tree.kind(i) === "chardev" && tree.rdev(i) === 0) {
          if (nlink > 1) throw new FormatError(`whiteout ${this.path(n)} is hardlinked: it may have one name only`);
          this.#flags[n] = WHITEOUT;
          this.#flags[node] |= HAS_WHITEOUTS;
          hasWhiteout = true;
        }
      }
      this.#nlink[node] = 2 + subdirs;
    }
    this.count = count;
    this.hasWhiteout = hasWhiteout;
  }

  /** Bytes of the table's arrays. */
  get bytes(): number {
    return this.#inodeOf.byteLength + this.#nodeOf.byteLength + this.#entryOf.byteLength + this.#nlink.byteLength +
      this.#flags.byteLength + this.#childStart.byteLength + this.#childCount.byteLength + this.#children.byteLength;
  }

  /** The node of packed inode `i`, or -1 when it is not in the image. */
  nodeOfInode(i: number): number {
    return this.#nodeOf[i];
  }

  /** The node of the directory that holds the name that numbered node `n` (the root's is the root). */
  parentNode(n: number): number {
    const e = this.#entryOf[n];
    if (e === NONE || e >= this.tree.entryCount) return 0;
    return this.#nodeOf[this.tree.entryParent(e)];
  }

  /** The packed inode of node `n` (or, for a whiteout device, `tree.inodeCount + k`). */
  inodeOf(n: number): number {
    return this.#inodeOf[n];
  }

  /** The node of a directory entry's inode. */
  nodeOfEntry(e: number): number {
    const entries = this.tree.entryCount;
    return this.#nodeOf[e >= entries ? this.tree.inodeCount + e - entries : this.tree.entryInode(e)];
  }

  /** Node `n`'s kind after the rewrites (a whiteout is a "file"). */
  kind(n: number): Inode["type"] {
    const f = this.#flags[n];
    if (f & STUB) return "chardev";
    if (f & WHITEOUT) return "file";
    return this.tree.kind(this.#inodeOf[n]);
  }

  /** True for one of the root's whiteout devices. */
  isStub(n: number): boolean {
    return (this.#flags[n] & STUB) !== 0;
  }

  /** True for a whiteout rewritten as a file. */
  isWhiteout(n: number): boolean {
    return (this.#flags[n] & WHITEOUT) !== 0;
  }

  /** The link count: names of a leaf; 2 + subdirectories for a directory. */
  nlink(n: number): number {
    return this.#nlink[n];
  }

  /** The packed inode whose metadata node `n` has (a whiteout device has the root's). */
  metaInode(n: number): number {
    return this.isStub(n) ? PackedTree.ROOT : this.#inodeOf[n];
  }

  /** A directory node's entries in name order (entry ids, see the class documentation). */
  entries(n: number): Uint32Array {
    const dir = this.#inodeOf[n];
    const start = this.#childStart[dir];
    return this.#children.subarray(start, start + this.#childCount[dir]);
  }

  /** An entry's name (a whiteout device's included). */
  entryName(e: number): Uint8Array {
    const entries = this.tree.entryCount;
    return e >= entries ? STUB_NAMES[e - entries] : this.tree.entryName(e);
  }

  /** The path of the name that numbered node `n`, quoted for a message. */
  path(n: number): string {
    return this.#entryOf[n] === NONE ? quotePath(Uint8Array.of(0x2f)) : this.#entryPath(this.#entryOf[n]);
  }

  #entryPath(e: number): string {
    const names: Uint8Array[] = [];
    const entries = this.tree.entryCount;
    for (;;) {
      names.unshift(this.entryName(e));
      const dir = e >= entries ? PackedTree.ROOT : this.tree.entryParent(e);
      if (dir === PackedTree.ROOT) break;
      e = this.#entryOf[this.#nodeOf[dir]];
    }
    let length = 0;
    for (const n of names) length += 1 + n.length;
    const path = new Uint8Array(length);
    let o = 0;
    for (const n of names) {
      path[o++] = 0x2f;
      path.set(n, o);
      o += n.length;
    }
    return quotePath(path);
  }

  /** Node `n`'s own xattrs, escaped, sorted by name (a whiteout device: the root's SELinux label). */
  ownXattrs(n: number): Xattr[] {
    const tree = this.tree;
    if (this.isStub(n)) {
      const selinux = tree.xattrSet(tree.xattrs(PackedTree.ROOT)).find((x) => compare(x.name, XATTR.selinux) === 0);
      return selinux ? [selinux] : [];
    }
    const set = tree.xattrs(this.#inodeOf[n]);
    let escaped = this.#escaped.get(set);
    if (!escaped) {
      escaped = tree.xattrSet(set).map((x) => {
        if (!startsWith(x.name, OVERLAY_PREFIX)) return x;
        const name = new Uint8Array(OVERLAY_ESCAPED_PREFIX.length + x.name.length - OVERLAY_PREFIX.length);
        name.set(OVERLAY_ESCAPED_PREFIX);
        name.set(x.name.subarray(OVERLAY_PREFIX.length), OVERLAY_ESCAPED_PREFIX.length);
        return { name, value: x.value };
      }).sort((a, b) => compare(a.name, b.name));
      this.#escaped.set(set, escaped);
    }
    return escaped;
  }

  /** The markers the rewrites give node `n`: a whiteout's, a directory's with whiteouts, the root's opaque one. */
  markerXattrs(n: number): Xattr[] {
    const f = this.#flags[n];
    if (f & WHITEOUT) return WHITEOUT_XATTRS;
    if (f & HAS_WHITEOUTS) return n === 0 ? [...DIR_WHITEOUT_XATTRS, ...ROOT_XATTRS] : DIR_WHITEOUT_XATTRS;
    return n === 0 ? ROOT_XATTRS : [];
  }

  /** True when node `n` is an external file: the rewrites make it a metacopy stub ({@link stubXattrs}). */
  isExternal(n: number): boolean {
    return !(this.#flags[n] & (STUB | WHITEOUT)) && this.tree.isExternal(this.#inodeOf[n]);
  }

  /** An external file's `trusted.overlay.metacopy` and `trusted.overlay.redirect` (when it has a payload). */
  stubXattrs(n: number): Xattr[] {
    const i = this.#inodeOf[n];
    const out = [{ name: XATTR.metacopy, value: metacopyValue(this.tree.digest(i)) }];
    const payload = this.tree.payload(i);
    if (payload?.length) {
      const redirect = new Uint8Array(payload.length + 1);
      redirect[0] = 0x2f;
      redirect.set(payload, 1);
      out.push({ name: XATTR.redirect, value: redirect });
    }
    return out;
  }

  /**
   * Node `n`'s xattrs after the rewrites, sorted by name: its own (escaped), with
   * those the rewrites set (which win over its own of the same name).
   */
  xattrs(n: number): Xattr[] {
    const own = this.ownXattrs(n);
    const extra = this.isExternal(n) ? this.stubXattrs(n) : this.markerXattrs(n);
    if (extra.length === 0) return own;
    const out = own.filter((x) => !extra.some((y) => compare(x.name, y.name) === 0));
    out.push(...extra);
    return out.sort((a, b) => compare(a.name, b.name));
  }
}

/** The value of `trusted.overlay.metacopy` for a file with fs-verity digest `digest` (empty without one). */
export function metacopyValue(digest: Uint8Array | null): Uint8Array {
  if (!digest) return EMPTY;
  const v = new Uint8Array(36);
  v.set([0, 36, 0, 1]);
  v.set(digest, 4);
  return v;
}

/**
 * Numbers the inodes of `tree` and works out the overlayfs rewrites (see the
 * module doc). Throws a {@link FormatError} naming the path when the tree cannot
 * be written: a directory reachable twice, a hardlinked whiteout.
 */
export function collectInodes(tree: PackedTree): InodeTable {
  return new InodeTable(tree);
}
