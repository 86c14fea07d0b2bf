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
 * @module
 */
import { FormatError } from "../errors.ts";
import { startsWith } from "./erofs_format.ts";
import { byteKey, childPath, compareBytes, type Directory, type Inode, quotePath, type Xattr, Xattrs } from "./tree.ts";

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
const DOT = te.encode(".");
const DOTDOT = te.encode("..");

/** A directory entry as the image stores it: a name and the node it names. */
export interface Dirent {
  name: Uint8Array;
  /** The node named; null only while the first name of a hardlinked inode is not numbered yet. */
  node: Node | null;
  /** The tree's inode, to find `node` once it is numbered. */
  inode: Inode;
}

/** One inode of the image: its source, what the rewrites made of it, and (set by the writer) its layout. */
export interface Node {
  /** Inode number: position in breadth-first order, written as `i_ino`. */
  index: number;
  inode: Inode;
  /** Type after the rewrites (an escaped whiteout is a "file"). */
  type: Inode["type"];
  /** The directory of the name that numbered this inode (null for the root), for messages. */
  parent: Node | null;
  name: Uint8Array;
  /** Link count: names of a leaf; 2 + subdirectories for a directory. */
  nlink: number;
  /** i_size: file size, symlink target length, or (set by the writer) directory size. */
  size: number;
  /** Xattrs after the rewrites, keyed by {@link byteKey} of the name. */
  xattrs: Map<string, Xattr>;
  /** The same, sorted by name: the order the image stores them in. */
  sortedXattrs: Xattr[];
  /** A directory's entries, `.` and `..` included, sorted by name. */
  dirents: Dirent[];
  /** Writer: offsets into the shared xattr table of the xattrs stored there. */
  sharedRefs: number[];
  /** Writer: the xattrs stored after the inode. */
  localXattrs: Xattr[];
  /** Writer: bytes of the xattr area after the inode (0 when none). */
  xattrSize: number;
  /** Writer: compact (32-byte) or extended (64-byte) inode. */
  compact: boolean;
  /** Writer: whole data blocks, and the bytes inline after the inode and its xattrs. */
  nBlocks: number;
  tailSize: number;
  /** Writer: a symlink whose target is in a data block. */
  promotedSymlink: boolean;
  /** Writer: the inode's slot number, and its first data block. */
  nid: number;
  blkaddr: number;
}

function setXattr(n: Node, name: Uint8Array, value: Uint8Array): void {
  n.xattrs.set(byteKey(name), { name, value });
}

/** The path of the name that numbered `n`, quoted for a message. */
export function nodePath(n: Node): string {
  const names: Uint8Array[] = [];
  for (let p: Node | null = n; p?.parent; p = p.parent) names.unshift(p.name);
  return quotePath(names.length ? names.reduce(childPath, new Uint8Array(0)) : Uint8Array.of(0x2f));
}

function isWhiteout(i: Inode): boolean {
  return i.type === "chardev" && i.rdev === 0;
}

/** The inodes of an image in number order, and whether the tree held a whiteout. */
export interface InodeTable {
  nodes: Node[];
  hasWhiteout: boolean;
}

/**
 * Numbers the inodes of `root` and applies the overlayfs rewrites (see the module
 * doc). Throws a {@link FormatError} naming the path when the tree cannot be
 * written: a directory reachable twice, a field out of range, a hardlinked whiteout.
 */
export function collectInodes(root: Directory): InodeTable {
  return collect(root, countLinks(root));
}

/** How many directory entries name each non-directory inode, and where it first appears. */
interface LinkInfo {
  counts: Map<Inode, number>;
  /** The first occurrence of each leaf, depth-first in name order: its directory and name. */
  first: Map<Inode, { dir: Directory; name: Uint8Array }>;
}

function countLinks(root: Directory): LinkInfo {
  const counts = new Map<Inode, number>();
  const first = new Map<Inode, { dir: Directory; name: Uint8Array }>();
  const seenDirs = new Set<Directory>([root]);
  const visit = (dir: Directory, path: Uint8Array) => {
    for (const e of dir.entries()) {
      const i = e.inode;
      if (i.type === "directory") {
        const p = childPath(path, e.name);
        if (seenDirs.has(i)) throw new FormatError(`directory ${quotePath(p)} appears twice in the tree`);
        seenDirs.add(i);
        visit(i, p);
        continue;
      }
      const c = counts.get(i) ?? 0;
      if (c === 0) first.set(i, { dir, name: e.name });
      counts.set(i, c + 1);
    }
  };
  visit(root, new Uint8Array(0));
  return { counts, first };
}

function newNode(index: number, inode: Inode, parent: Node | null, name: Uint8Array, nlink: number): Node {
  return {
    index,
    inode,
    type: inode.type,
    parent,
    name,
    nlink,
    size: 0,
    xattrs: new Map(),
    sortedXattrs: [],
    sharedRefs: [],
    localXattrs: [],
    dirents: [],
    compact: false,
    nBlocks: 0,
    tailSize: 0,
    promotedSymlink: false,
    xattrSize: 0,
    nid: 0,
    blkaddr: 0,
  };
}

const HEX = "0123456789abcdef";

/**
 * Numbers the inodes breadth-first (directory entries in name order), builds each
 * directory's entries with `.` and `..`, and applies the overlayfs rewrites.
 */
function collect(root: Directory, links: LinkInfo): InodeTable {
  const rootNode = newNode(0, root, null, EMPTY, 0);
  const nodes: Node[] = [rootNode];
  const byInode = new Map<Inode, Node>();
  const deferred: Dirent[] = [];
  let hasWhiteout = false;
  prepare(rootNode);
  setXattr(rootNode, XATTR.opaque, te.encode("y"));

  for (let q = 0; q < nodes.length; q++) {
    const dir = nodes[q];
    if (dir.inode.type !== "directory") continue;
    const entries: { name: Uint8Array; inode: Inode; stub?: boolean }[] = [...dir.inode.entries()];
    if (dir === rootNode) entries.push(...whiteoutStubs(root));
    entries.sort((a, b) => compareBytes(a.name, b.name));

    const dirents: Dirent[] = [];
    let subdirs = 0;
    let whiteouts = false;
    for (const e of entries) {
      const i = e.inode;
      let node: Node | null = null;
      if (i.type === "directory") {
        node = newNode(nodes.length, i, dir, e.name, 0);
        subdirs++;
      } else if (e.stub) {
        node = newNode(nodes.length, i, dir, e.name, 1);
      } else {
        const f = links.first.get(i)!;
        if (f.dir === dir.inode && compareBytes(f.name, e.name) === 0) {
          node = newNode(nodes.length, i, dir, e.name, links.counts.get(i)!);
        }
      }
      if (!node) {
        // Another name of a hardlinked inode: it shares the inode of the first name.
        const d: Dirent = { name: e.name, node: byInode.get(i) ?? null, inode: i };
        dirents.push(d);
        if (!d.node) deferred.push(d);
        continue;
      }
      dirents.push({ name: e.name, node, inode: i });
      nodes.push(node);
      byInode.set(i, node);
      if (e.stub) {
        const selinux = root.meta.xattrs.get(XATTR.selinux);
        if (selinux) setXattr(node, XATTR.selinux, selinux);
        continue;
      }
      prepare(node);
      if (isWhiteout(i)) {
        if (node.nlink > 1) {
          throw new FormatError(`whiteout ${nodePath(node)} is hardlinked: it may have one name only`);
        }
        node.type = "file";
        setXattr(node, XATTR.escapedWhiteout, EMPTY);
        setXattr(node, XATTR.userWhiteout, EMPTY);
        whiteouts = true;
      }
    }
    if (whiteouts) {
      setXattr(dir, XATTR.escapedWhiteouts, EMPTY);
      setXattr(dir, XATTR.userWhiteouts, EMPTY);
      setXattr(dir, XATTR.escapedOpaque, te.encode("x"));
      setXattr(dir, XATTR.userOpaque, te.encode("x"));
      hasWhiteout = true;
    }
    dir.nlink = 2 + subdirs;
    dirents.push({ name: DOT, node: dir, inode: dir.inode }, {
      name: DOTDOT,
      node: dir.parent ?? dir,
      inode: dir.inode,
    });
    dirents.sort((a, b) => compareBytes(a.name, b.name));
    dir.dirents = dirents;
  }
  for (const d of deferred) d.node = byInode.get(d.inode)!;
  for (const n of nodes) n.sortedXattrs = [...n.xattrs.values()].sort((a, b) => compareBytes(a.name, b.name));
  return { nodes, hasWhiteout };
}

/** The whiteout devices `00`..`ff` the root gets for the names it does not use. */
function whiteoutStubs(root: Directory): { name: Uint8Array; inode: Inode; stub: true }[] {
  const m = root.meta;
  const stubs: { name: Uint8Array; inode: Inode; stub: true }[] = [];
  for (let i = 0; i < 256; i++) {
    const name = te.encode(HEX[i >> 4] + HEX[i & 15]);
    if (root.get(name)) continue;
    const inode: Inode = {
      type: "chardev",
      rdev: 0,
      meta: { mode: 0o644, uid: m.uid, gid: m.gid, mtime: m.mtime, xattrs: new Xattrs() },
    };
    stubs.push({ name, inode, stub: true });
  }
  return stubs;
}

/** Checks a node's fields and sets its size and xattrs (escaped, plus the metacopy stub's). */
function prepare(n: Node): void {
  const i = n.inode;
  const m = i.meta;
  const where = () => nodePath(n);
  const check = (ok: boolean, what: string) => {
    if (!ok) throw new FormatError(`${where()}: ${what}`);
  };
  check(
    Number.isInteger(m.mode) && m.mode >= 0 && m.mode <= 0o7777,
    `mode ${m.mode} is not permission bits (0..0o7777)`,
  );
  check(Number.isInteger(m.uid) && m.uid >= 0 && m.uid <= 0xffffffff, `uid ${m.uid} is out of range`);
  check(Number.isInteger(m.gid) && m.gid >= 0 && m.gid <= 0xffffffff, `gid ${m.gid} is out of range`);
  check(
    Number.isSafeInteger(m.mtime.sec) && Number.isInteger(m.mtime.nsec) && m.mtime.nsec >= 0 &&
      m.mtime.nsec <= 999_999_999,
    "mtime is out of range",
  );
  for (const x of m.xattrs) {
    check(
      x.name.length > 0 && x.name.length <= 255 && !x.name.includes(0),
      "an xattr name is empty, too long or has NUL",
    );
    check(x.value.length <= 0xffff, "an xattr value is longer than 65535 bytes");
    if (startsWith(x.name, OVERLAY_PREFIX)) {
      const escaped = new Uint8Array(OVERLAY_ESCAPED_PREFIX.length + x.name.length - OVERLAY_PREFIX.length);
      escaped.set(OVERLAY_ESCAPED_PREFIX);
      escaped.set(x.name.subarray(OVERLAY_PREFIX.length), OVERLAY_ESCAPED_PREFIX.length);
      check(escaped.length <= 255, "an escaped trusted.overlay xattr name is longer than 255 bytes");
      setXattr(n, escaped, x.value);
    } else {
      setXattr(n, x.name, x.value);
    }
  }
  switch (i.type) {
    case "file":
      check(Number.isSafeInteger(i.size) && i.size >= 0, `size ${i.size} is out of range`);
      n.size = i.size;
      if (i.content) {
        check(i.content.length === i.size, `inline content is ${i.content.length} bytes, size says ${i.size}`);
      } else if (i.size > 0) {
        // One chunk covers at most 2^43 bytes; larger stubs would need a chunk table.
        check(i.size <= 2 ** 43, `external files larger than 8 TiB are not supported (size ${i.size})`);
        let metacopy = EMPTY;
        if (i.digest) {
          check(i.digest.length === 32, "the fs-verity digest is not 32 bytes");
          metacopy = new Uint8Array(36);
          metacopy.set([0, 36, 0, 1]);
          metacopy.set(i.digest, 4);
        }
        setXattr(n, XATTR.metacopy, metacopy);
        if (i.payload?.length) {
          const redirect = new Uint8Array(i.payload.length + 1);
          redirect[0] = 0x2f;
          redirect.set(i.payload, 1);
          setXattr(n, XATTR.redirect, redirect);
        }
      }
      break;
    case "symlink":
      check(
        i.target.length > 0 && i.target.length < 4096 && !i.target.includes(0),
        "symlink target is empty, too long or has NUL",
      );
      n.size = i.target.length;
      break;
    case "chardev":
    case "blockdev":
      check(Number.isInteger(i.rdev) && i.rdev >= 0 && i.rdev <= 0xffffffff, `device number ${i.rdev} is out of range`);
      break;
  }
}
