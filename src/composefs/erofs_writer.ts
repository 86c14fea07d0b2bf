/**
 * Writes the EROFS image of a composefs tree, byte for byte what C `mkcomposefs`
 * (libcomposefs 1.0.8) writes for the same tree: format version 1
 * (`--min-version=1 --max-version=1`, composefs-rs's default) or 0 (mkcomposefs's
 * default, which becomes 1 when the tree holds a whiteout).
 *
 * The inodes come from {@link collectInodes} (numbering and overlayfs rewrites);
 * this module lays them out and writes them:
 * - a compact inode when the mtime equals the image's build time (the oldest mtime
 *   of all) and nlink, uid, gid and size fit its narrower fields; extended otherwise;
 * - xattrs that more than one inode has go to the shared table (sorted descending by
 *   name, value length, value), the rest inline after the inode;
 * - directory entries fill 4096-byte blocks; the last block follows the inode inline
 *   when it takes at most half a block; inline file data likewise;
 * - external files are chunk-based with null chunks (overlayfs reads the data from
 *   the object the redirect names);
 * - padding before an inode so that its inline tail does not cross a block boundary
 *   (for a symlink: the inode with its target); a symlink whose inode and target
 *   reach a whole block gets its target in a data block instead;
 * - then the shared xattrs, then the data blocks in inode order.
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
import type { DumpEntry } from "./dumpfile.ts";
import {
  byteKey,
  compareBytes,
  type Directory,
  type Inode,
  INODE_TYPE_BITS,
  type Timespec,
  type Xattr,
} from "./tree.ts";
import { treeToDump } from "./tree_dump.ts";
import { collectInodes, type Dirent, type Node, nodePath, XATTR } from "./erofs_inodes.ts";

/** Options of {@link writeErofs}. */
export interface ErofsOptions {
  /**
   * The composefs format version. 1 (the default) is `mkcomposefs --min-version=1
   * --max-version=1`; 0 is plain `mkcomposefs`, which writes 1 anyway when the tree
   * holds a whiteout. The two differ only in the header's version field.
   */
  version?: 0 | 1;
}

/**
 * The EROFS composefs image of the tree `root`, as bytes. Throws a
 * {@link FormatError} naming the path when the tree cannot be written (a directory
 * reachable twice, a field out of range, a hardlinked whiteout, an image too big).
 */
export function writeErofs(root: Directory, options: ErofsOptions = {}): Uint8Array {
  const { nodes, hasWhiteout } = collectInodes(root);
  const version = hasWhiteout ? 1 : options.version ?? 1;
  const hasAcl = nodes.some((n) => n.xattrs.has(byteKey(XATTR.aclAccess)) || n.xattrs.has(byteKey(XATTR.aclDefault)));
  const minMtime = minimumMtime(nodes);
  const shared = shareXattrs(nodes);
  const layout = computeLayout(nodes, shared.size, minMtime);
  return emit(nodes, shared, layout, {
    flags: hasAcl ? COMPOSEFS_FLAGS_HAS_ACL : 0,
    composefsVersion: version,
    minMtime,
  });
}

/** The oldest mtime of all inodes: the image's build time, and the mtime of its compact inodes. */
function minimumMtime(nodes: Node[]): Timespec {
  let min: Timespec = nodes[0].inode.meta.mtime;
  for (const n of nodes) {
    const t = n.inode.meta.mtime;
    if (t.sec < min.sec || (t.sec === min.sec && t.nsec < min.nsec)) min = t;
  }
  return min;
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
  const pairKey = (x: Xattr) => `${byteKey(x.name)}\0${byteKey(x.value)}`;
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
      if (n.xattrSize > MAX_XATTR_AREA) {
        throw new FormatError(`${nodePath(n)}: its xattrs take ${n.xattrSize} bytes, more than an inode holds`);
      }
    }
  }
  return { entries: sharedList.map((c) => c.x), size: offset };
}

/** The largest xattr area an inode can have: its size in 4-byte words (less one) is a u16. */
const MAX_XATTR_AREA = XATTR_IBODY_HEADER_SIZE + 4 * (0xffff - 1);

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
        n.tailSize = 4; // one chunk (the inode table checked the size), a null address
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
      // Start the tail in the next block if it would cross one. A tail is at most half a
      // block, so after rounding up to the next slot (at most 31 bytes into the block) it fits.
      const remainder = BLOCK_SIZE - ((pos + nonTail) % BLOCK_SIZE);
      if (remainder < n.tailSize) pad = roundUp(remainder, SLOT_SIZE);
    }
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

/** Writes the entries of one directory block at `off`; returns the offset after the names. */
function writeDirentBlock(out: Uint8Array, view: DataView, off: number, ds: Dirent[]): number {
  let nameoff = ds.length * DIRENT_SIZE;
  let o = off;
  for (const d of ds) {
    writeDirent(view, o, d.node!.nid, nameoff, FT[d.node!.type]);
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
      mode: INODE_TYPE_BITS[n.type] | i.meta.mode,
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

/**
 * The dumpfile entries `composefs-info dump` prints for the image
 * {@link writeErofs} makes of `root`: {@link treeToDump} with each directory's size
 * in the image.
 */
export function imageDump(root: Directory): Generator<DumpEntry> {
  const { nodes } = collectInodes(root);
  const shared = shareXattrs(nodes);
  computeLayout(nodes, shared.size, minimumMtime(nodes));
  const sizes = new Map<Inode, number>();
  for (const n of nodes) if (n.inode.type === "directory") sizes.set(n.inode, n.size);
  return treeToDump(root, { directorySize: (d) => sizes.get(d)! });
}
