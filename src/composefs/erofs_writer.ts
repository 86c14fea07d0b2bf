/**
 * Writes the EROFS image of a composefs tree, byte for byte what C `mkcomposefs`
 * (libcomposefs 1.0.8) writes for the same tree: format version 1
 * (`--min-version=1 --max-version=1`, composefs-rs's default) or 0 (mkcomposefs's
 * default, which becomes 1 when the tree holds a whiteout).
 *
 * What the writer does to the tree first, as libcomposefs does:
 * - every `trusted.overlay.*` xattr is escaped to `trusted.overlay.overlay.*`, so
 *   overlayfs reads it as the file's own, not as an instruction;
 * - an external regular file becomes a metacopy stub: `trusted.overlay.metacopy`
 *   (version 0, length 36, flags 0, algorithm 1, then the fs-verity digest; empty
 *   without a digest) and `trusted.overlay.redirect` (`/` + payload);
 * - a whiteout (character device 0:0) becomes an empty regular file with
 *   `trusted.overlay.overlay.whiteout` and `user.overlay.whiteout`, and its directory
 *   gets `trusted.overlay.overlay.whiteouts`, `user.overlay.whiteouts` and (version
 *   1) `trusted.overlay.overlay.opaque=x`, `user.overlay.opaque=x`;
 * - the root gets `trusted.overlay.opaque=y`, and 256 whiteout devices `00`..`ff`
 *   (the names it does not already have; owner, mtime and SELinux label of the root)
 *   so that the image, as overlayfs's data layer, hides nothing of its own.
 *
 * Then the layout: inodes numbered breadth-first with entries in name order,
 * hardlinks sharing the inode of their first occurrence (depth-first, name order);
 * a compact inode when the mtime equals the image's build time (the oldest mtime)
 * and the other fields fit, extended otherwise; xattrs used by more than one inode
 * go to the shared table (in descending name, length, value order); directory
 * entries in 4096-byte blocks, the last one inline after the inode when it takes at
 * most half a block; inline file data likewise; padding so that no inline tail
 * crosses a block boundary (for symlinks: no inode with its target).
 *
 * @module
 */
import { FormatError } from "../errors.ts";
import {
  BLOCK_BITS,
  BLOCK_SIZE,
  CHUNK_FORMAT_BLKBITS_MASK,
  COMPACT_INODE_SIZE,
  COMPOSEFS_FLAGS_HAS_ACL,
  DIRENT_SIZE,
  EXTENDED_INODE_SIZE,
  FT,
  LAYOUT_CHUNK_BASED,
  LAYOUT_FLAT_INLINE,
  LAYOUT_FLAT_PLAIN,
  MAX_SHARED_PER_INODE,
  NULL_ADDR,
  roundUp,
  SLOT_SIZE,
  SUPERBLOCK_OFFSET,
  SUPERBLOCK_SIZE,
  writeComposefsHeader,
  writeDirent,
  writeInode,
  writeSuperblock,
  writeXattrEntry,
  XATTR_IBODY_HEADER_SIZE,
  xattrEntrySize,
  xattrFilterBit,
} from "./erofs_format.ts";
import { S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFREG, S_IFSOCK } from "./dumpfile.ts";
import { compareBytes, type Directory, type Inode, quotePath, type Timespec, type Xattr, Xattrs } from "./tree.ts";

/** Options of {@link writeErofs}. */
export interface ErofsOptions {
  /**
   * The composefs format version. 1 (the default) is `mkcomposefs --min-version=1
   * --max-version=1`; 0 is plain `mkcomposefs`, which writes 1 anyway when the tree
   * holds a whiteout. The two differ only in the header's version field.
   */
  version?: 0 | 1;
}

const te = new TextEncoder();
const OVERLAY_PREFIX = te.encode("trusted.overlay.");
const OVERLAY_ESCAPED_PREFIX = te.encode("trusted.overlay.overlay.");
const XATTR = {
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

const TYPE_BITS: Record<Inode["type"], number> = {
  file: S_IFREG,
  directory: S_IFDIR,
  symlink: S_IFLNK,
  chardev: S_IFCHR,
  blockdev: S_IFBLK,
  fifo: S_IFIFO,
  socket: S_IFSOCK,
};

/** A directory entry as the image stores it: a name and the node it names. */
interface Dirent {
  name: Uint8Array;
  node: Node | null;
  /** The inode, until `node` is known (a hardlink whose first occurrence is deeper). */
  inode: Inode;
}

/** One inode of the image, with everything the layout decides for it. */
interface Node {
  index: number;
  inode: Inode;
  /** Type after whiteout escaping. */
  type: Inode["type"];
  parent: Node | null;
  name: Uint8Array;
  nlink: number;
  size: number;
  xattrs: Map<string, Xattr>;
  sortedXattrs: Xattr[];
  sharedRefs: number[];
  localXattrs: Xattr[];
  dirents: Dirent[];
  // layout
  compact: boolean;
  nBlocks: number;
  tailSize: number;
  promotedSymlink: boolean;
  xattrSize: number;
  pad: number;
  nid: number;
  blkaddr: number;
}

function key(b: Uint8Array): string {
  let s = "";
  for (let i = 0; i < b.length; i += 8192) s += String.fromCharCode(...b.subarray(i, i + 8192));
  return s;
}

function hasPrefix(b: Uint8Array, prefix: Uint8Array): boolean {
  return b.length >= prefix.length && prefix.every((c, i) => b[i] === c);
}

function setXattr(n: Node, name: Uint8Array, value: Uint8Array): void {
  n.xattrs.set(key(name), { name, value });
}

function pathOf(n: Node): string {
  const parts: Uint8Array[] = [];
  for (let p: Node | null = n; p?.parent; p = p.parent) parts.unshift(p.name);
  const len = parts.reduce((a, p) => a + 1 + p.length, 0);
  const out = new Uint8Array(Math.max(1, len));
  out[0] = 0x2f;
  let o = 0;
  for (const p of parts) {
    out[o++] = 0x2f;
    out.set(p, o);
    o += p.length;
  }
  return quotePath(out);
}

function isWhiteout(i: Inode): boolean {
  return i.type === "chardev" && i.rdev === 0;
}

/**
 * The EROFS composefs image of the tree `root`, as bytes. Throws a
 * {@link FormatError} naming the path when the tree cannot be written (a directory
 * reachable twice, a field out of range, a hardlinked whiteout).
 */
export function writeErofs(root: Directory, options: ErofsOptions = {}): Uint8Array {
  const requested = options.version ?? 1;
  const refs = countLinks(root);
  let hasWhiteout = false;
  for (const i of refs.counts.keys()) if (isWhiteout(i)) hasWhiteout = true;
  const version = requested === 0 && hasWhiteout ? 1 : requested;

  const nodes = collect(root, refs, version);
  const hasAcl = nodes.some((n) => n.xattrs.has(key(XATTR.aclAccess)) || n.xattrs.has(key(XATTR.aclDefault)));
  let minMtime: Timespec = nodes[0].inode.meta.mtime;
  for (const n of nodes) {
    const t = n.inode.meta.mtime;
    if (t.sec < minMtime.sec || (t.sec === minMtime.sec && t.nsec < minMtime.nsec)) minMtime = t;
  }
  const shared = shareXattrs(nodes);
  const layout = computeLayout(nodes, shared.size, minMtime);
  return emit(nodes, shared, layout, {
    flags: hasAcl ? COMPOSEFS_FLAGS_HAS_ACL : 0,
    composefsVersion: version,
    minMtime,
  });
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
  const visit = (dir: Directory, path: string) => {
    for (const e of dir.entries()) {
      const i = e.inode;
      if (i.type === "directory") {
        const p = `${path}/${key(e.name)}`;
        if (seenDirs.has(i)) throw new FormatError(`directory ${JSON.stringify(p)} appears twice in the tree`);
        seenDirs.add(i);
        visit(i, p);
        continue;
      }
      const c = counts.get(i) ?? 0;
      if (c === 0) first.set(i, { dir, name: e.name });
      counts.set(i, c + 1);
    }
  };
  visit(root, "");
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
    pad: 0,
    nid: 0,
    blkaddr: 0,
  };
}

const HEX = "0123456789abcdef";

/**
 * Numbers the inodes breadth-first (directory entries in name order), builds each
 * directory's entries with `.` and `..`, and applies the overlayfs rewrites.
 */
function collect(root: Directory, links: LinkInfo, version: number): Node[] {
  const rootNode = newNode(0, root, null, EMPTY, 0);
  const nodes: Node[] = [rootNode];
  const byInode = new Map<Inode, Node>();
  const deferred: Dirent[] = [];
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
        if (node.nlink > 1) throw new FormatError(`whiteout ${pathOf(node)} is hardlinked: it may have one name only`);
        node.type = "file";
        setXattr(node, XATTR.escapedWhiteout, EMPTY);
        setXattr(node, XATTR.userWhiteout, EMPTY);
        whiteouts = true;
      }
    }
    if (whiteouts) {
      setXattr(dir, XATTR.escapedWhiteouts, EMPTY);
      setXattr(dir, XATTR.userWhiteouts, EMPTY);
      if (version >= 1) {
        setXattr(dir, XATTR.escapedOpaque, te.encode("x"));
        setXattr(dir, XATTR.userOpaque, te.encode("x"));
      }
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
  return nodes;
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
  const where = () => pathOf(n);
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
    if (hasPrefix(x.name, OVERLAY_PREFIX)) {
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

/** The shared xattr table: its entries in on-disk order and its size in bytes. */
interface SharedXattrs {
  entries: Xattr[];
  size: number;
}

/**
 * Moves every (name, value) pair that more than one inode has to the shared table,
 * sorted descending by name, then value length, then value; each inode references at
 * most {@link MAX_SHARED_PER_INODE} of them, in its own (ascending name) order.
 */
function shareXattrs(nodes: Node[]): SharedXattrs {
  const counts = new Map<string, { x: Xattr; count: number; offset: number }>();
  const pairKey = (x: Xattr) => `${key(x.name)}\0${key(x.value)}`;
  for (const n of nodes) {
    for (const x of n.sortedXattrs) {
      const k = pairKey(x);
      const c = counts.get(k);
      if (c) c.count++;
      else counts.set(k, { x, count: 1, offset: -1 });
    }
  }
  const sharedList = [...counts.values()].filter((c) => c.count > 1).sort((a, b) =>
    compareBytes(b.x.name, a.x.name) || b.x.value.length - a.x.value.length || compareBytes(b.x.value, a.x.value)
  );
  let offset = 0;
  for (const c of sharedList) {
    c.offset = offset;
    offset += xattrEntrySize(c.x.name, c.x.value.length);
  }
  for (const n of nodes) {
    for (const x of n.sortedXattrs) {
      const c = counts.get(pairKey(x))!;
      if (c.offset >= 0 && n.sharedRefs.length < MAX_SHARED_PER_INODE) n.sharedRefs.push(c.offset);
      else n.localXattrs.push(x);
    }
    if (n.sortedXattrs.length > 0) {
      let size = XATTR_IBODY_HEADER_SIZE + 4 * n.sharedRefs.length;
      for (const x of n.localXattrs) size += xattrEntrySize(x.name, x.value.length);
      n.xattrSize = roundUp(size, 4);
    }
  }
  return { entries: sharedList.map((c) => c.x), size: offset };
}

/** Where the regions of the image start, once every inode is placed. */
interface Layout {
  inodesEnd: number;
  dataStart: number;
  dataBlocks: number;
}

/** Bits of a chunk's size: the smallest power of two at least the file size, at least a block. */
function chunkBits(size: number): number {
  let bits = BLOCK_BITS;
  while (bits < CHUNK_FORMAT_BLKBITS_MASK + BLOCK_BITS && 2 ** bits < size) bits++;
  return bits;
}

function chunkCount(size: number): number {
  return Math.ceil(size / 2 ** chunkBits(size));
}

/** Splits a directory's entries into full blocks (the dirent and name bytes of each). */
function direntBlocks(dirents: Dirent[]): Dirent[][] {
  const blocks: Dirent[][] = [[]];
  let used = 0;
  for (const d of dirents) {
    const len = DIRENT_SIZE + d.name.length;
    if (used + len > BLOCK_SIZE) {
      blocks.push([]);
      used = 0;
    }
    blocks[blocks.length - 1].push(d);
    used += len;
  }
  return blocks;
}

function direntBytes(ds: Dirent[]): number {
  return ds.reduce((a, d) => a + DIRENT_SIZE + d.name.length, 0);
}

function isExternal(n: Node): boolean {
  return n.type === "file" && n.inode.type === "file" && n.inode.content === null && n.size > 0;
}

/** Decides each inode's size, data blocks, inline tail, padding and nid. */
function computeLayout(nodes: Node[], sharedSize: number, minMtime: Timespec): Layout {
  let pos = SUPERBLOCK_OFFSET + SUPERBLOCK_SIZE;
  const metaStart = Math.floor(pos / BLOCK_SIZE) * BLOCK_SIZE;
  let dataBlocks = 0;
  for (const n of nodes) {
    const i = n.inode;
    if (i.type === "directory") {
      const blocks = direntBlocks(n.dirents);
      let tail = direntBytes(blocks[blocks.length - 1]);
      let full = blocks.length - 1;
      if (tail > BLOCK_SIZE / 2) {
        full++;
        tail = 0;
      }
      n.nBlocks = full;
      n.tailSize = tail;
      n.size = full * BLOCK_SIZE + tail;
    } else if (i.type === "symlink") {
      n.tailSize = i.target.length;
    } else if (n.type === "file" && n.size > 0) {
      if (!isExternal(n)) {
        n.nBlocks = Math.floor(n.size / BLOCK_SIZE);
        n.tailSize = n.size % BLOCK_SIZE;
        if (n.tailSize > BLOCK_SIZE / 2) {
          n.nBlocks++;
          n.tailSize = 0;
        }
      } else {
        n.tailSize = chunkCount(n.size) * 4;
      }
    }
    const m = i.meta;
    n.compact = m.mtime.sec === minMtime.sec && m.mtime.nsec === minMtime.nsec && n.nlink <= 0xffff &&
      m.uid <= 0xffff && m.gid <= 0xffff && n.size <= 0xffffffff;
    const inodeSize = n.compact ? COMPACT_INODE_SIZE : EXTENDED_INODE_SIZE;
    if (i.type === "symlink" && inodeSize + n.xattrSize + n.tailSize >= BLOCK_SIZE) {
      // The target does not fit in the inode's block: it goes to a data block.
      n.promotedSymlink = true;
      n.nBlocks = 1;
      n.tailSize = 0;
    }

    pos = roundUp(pos, SLOT_SIZE);
    const nonTail = inodeSize + n.xattrSize;
    let pad = 0;
    if (i.type === "symlink") {
      const total = nonTail + (n.promotedSymlink ? i.target.length : n.tailSize);
      if (Math.floor(pos / BLOCK_SIZE) !== Math.floor((pos + total - 1) / BLOCK_SIZE)) {
        pad = roundUp(pos, BLOCK_SIZE) - pos;
      }
    } else if (n.tailSize > 0) {
      const remainder = BLOCK_SIZE - ((pos + nonTail) % BLOCK_SIZE);
      if (remainder < n.tailSize) {
        const extra = roundUp(remainder, SLOT_SIZE);
        if (n.tailSize <= BLOCK_SIZE - ((pos + nonTail + extra) % BLOCK_SIZE)) {
          pad = extra;
        } else {
          // Even a fresh block would not hold it: the tail becomes a data block.
          n.nBlocks++;
          n.tailSize = 0;
          if (i.type === "directory") n.size = n.nBlocks * BLOCK_SIZE;
        }
      }
    }
    n.pad = pad;
    pos += pad;
    n.nid = (pos - metaStart) / SLOT_SIZE;
    pos += nonTail + n.tailSize;
    dataBlocks += n.nBlocks;
  }
  if (nodes[0].nid > 0xffff) throw new FormatError("the root inode does not fit in the first 2 MiB of the image");
  const inodesEnd = roundUp(pos, SLOT_SIZE);
  const dataStart = roundUp(inodesEnd + sharedSize, BLOCK_SIZE);
  let block = dataStart / BLOCK_SIZE;
  for (const n of nodes) {
    if (n.nBlocks > 0) {
      n.blkaddr = block;
      block += n.nBlocks;
    }
  }
  return { inodesEnd, dataStart, dataBlocks };
}

const FILE_TYPE: Record<Inode["type"], number> = FT;

function fileType(n: Node): number {
  return FILE_TYPE[n.type];
}

/** Writes the entries of one directory block at `off`; returns the offset after the names. */
function writeDirentBlock(out: Uint8Array, view: DataView, off: number, ds: Dirent[]): number {
  let nameoff = ds.length * DIRENT_SIZE;
  let o = off;
  for (const d of ds) {
    writeDirent(view, o, d.node!.nid, nameoff, fileType(d.node!));
    nameoff += d.name.length;
    o += DIRENT_SIZE;
  }
  for (const d of ds) {
    out.set(d.name, o);
    o += d.name.length;
  }
  return o;
}

function emit(
  nodes: Node[],
  shared: SharedXattrs,
  layout: Layout,
  h: { flags: number; composefsVersion: number; minMtime: Timespec },
): Uint8Array {
  const total = layout.dataStart + layout.dataBlocks * BLOCK_SIZE;
  if (total / BLOCK_SIZE > 0xffffffff) throw new FormatError("the image would be larger than EROFS allows");
  const out = new Uint8Array(total);
  const view = new DataView(out.buffer);
  writeComposefsHeader(view, { flags: h.flags, composefsVersion: h.composefsVersion });
  writeSuperblock(view, {
    rootNid: nodes[0].nid,
    inodes: nodes.length,
    buildTime: h.minMtime,
    blocks: total / BLOCK_SIZE,
    metaBlkaddr: 0,
    xattrBlkaddr: Math.floor(layout.inodesEnd / BLOCK_SIZE),
  });
  const sharedBase = layout.inodesEnd % BLOCK_SIZE;

  for (const n of nodes) {
    let off = n.nid * SLOT_SIZE;
    const i = n.inode;
    let dataLayout = n.tailSize > 0 ? LAYOUT_FLAT_INLINE : LAYOUT_FLAT_PLAIN;
    let u = n.nBlocks > 0 ? n.blkaddr : 0;
    if (i.type === "chardev" || i.type === "blockdev") u = n.type === "file" ? 0 : i.rdev;
    if (isExternal(n)) {
      dataLayout = LAYOUT_CHUNK_BASED;
      u = chunkBits(n.size) - BLOCK_BITS;
    }
    const xattrIcount = n.xattrSize === 0 ? 0 : (n.xattrSize - XATTR_IBODY_HEADER_SIZE) / 4 + 1;
    off += writeInode(view, off, {
      compact: n.compact,
      layout: dataLayout,
      xattrIcount,
      mode: TYPE_BITS[n.type] | i.meta.mode,
      nlink: n.nlink,
      size: n.size,
      u,
      ino: n.index,
      uid: i.meta.uid,
      gid: i.meta.gid,
      mtime: i.meta.mtime,
    });
    if (n.xattrSize > 0) {
      let filter = 0;
      for (const x of n.sortedXattrs) filter |= 1 << xattrFilterBit(x.name);
      view.setUint32(off, (~filter) >>> 0, true);
      out[off + 4] = n.sharedRefs.length;
      let o = off + XATTR_IBODY_HEADER_SIZE;
      for (const ref of n.sharedRefs) {
        view.setUint32(o, (sharedBase + ref) / 4, true);
        o += 4;
      }
      for (const x of n.localXattrs) o = writeXattrEntry(out, o, x.name, x.value);
      off += n.xattrSize;
    }
    if (n.tailSize > 0) {
      if (i.type === "directory") {
        const blocks = direntBlocks(n.dirents);
        writeDirentBlock(out, view, off, blocks[blocks.length - 1]);
      } else if (i.type === "symlink") {
        out.set(i.target, off);
      } else if (isExternal(n)) {
        for (let c = 0; c < n.tailSize; c += 4) view.setUint32(off + c, NULL_ADDR, true);
      } else if (i.type === "file" && i.content) {
        out.set(i.content.subarray(n.size - n.tailSize), off);
      }
    }
  }

  let off = layout.inodesEnd;
  for (const x of shared.entries) off = writeXattrEntry(out, off, x.name, x.value);

  for (const n of nodes) {
    if (n.nBlocks === 0) continue;
    let off = n.blkaddr * BLOCK_SIZE;
    const i = n.inode;
    if (i.type === "directory") {
      const blocks = direntBlocks(n.dirents);
      const full = n.tailSize > 0 ? blocks.length - 1 : blocks.length;
      for (let b = 0; b < full; b++) {
        writeDirentBlock(out, view, off, blocks[b]);
        off += BLOCK_SIZE;
      }
    } else if (i.type === "symlink") {
      out.set(i.target, off);
    } else if (i.type === "file" && i.content) {
      out.set(i.content.subarray(0, Math.min(i.content.length, n.nBlocks * BLOCK_SIZE)), off);
    }
  }
  return out;
}
