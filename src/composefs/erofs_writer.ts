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
 * The layout is worked out first, in typed arrays (some tens of bytes per inode),
 * then the image is produced front to back in chunks ({@link erofsChunks}), so a
 * caller can hash it or write it out without ever holding it whole.
 *
 * @module
 */
import { FormatError } from "../errors.ts";
import {
  BLOCK_BITS,
  BLOCK_SIZE,
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
  SLOT_SIZE,
  SUPERBLOCK_OFFSET,
  SUPERBLOCK_SIZE,
  writeComposefsHeader,
  writeDirent,
  writeInode,
  writeSuperblock,
  writeXattrEntry,
  XATTR_IBODY_HEADER_SIZE,
} from "./erofs_format.ts";
import type { DumpEntry } from "./dumpfile.ts";
import { chunkBits, COMPACT, Dirents, type LayoutOptions, Plan } from "./erofs_layout.ts";
import { entrySize, filterBit } from "./erofs_xattrs.ts";
import { childPath, type Directory, type Inode, INODE_TYPE_BITS, type Meta, quotePath } from "./tree.ts";
import { type InodeMeta, PackedTree } from "./packed_tree.ts";
import { treeToDump } from "./tree_dump.ts";
import { concat } from "../util/streams.ts";

/** Options of {@link writeErofs} and {@link erofsChunks}. */
export interface ErofsOptions extends LayoutOptions {
  /**
   * The composefs format version. 1 (the default) is `mkcomposefs --min-version=1
   * --max-version=1`; 0 is plain `mkcomposefs`, which writes 1 anyway when the tree
   * holds a whiteout. The two differ only in the header's version field.
   */
  version?: 0 | 1;
}

/** A tree the writer takes: packed, or built by hand (packed first). */
export type ImageTree = PackedTree | Directory;

/**
 * The packed form of a tree (one built by hand is packed: a leaf object named
 * several times is one inode, a hardlink; a directory reachable twice, or a
 * field out of range, is a {@link FormatError} naming the path).
 */
export function packTree(tree: ImageTree): PackedTree {
  if (tree instanceof PackedTree) return tree;
  const root = tree;
  const packed = new PackedTree({ mode: 0, uid: 0, gid: 0, sec: 0, nsec: 0, xattrs: 0 });
  const sets = new Map<object, number>();
  const metaOf = (m: Meta): InodeMeta => {
    let xattrs = sets.get(m.xattrs);
    if (xattrs === undefined) {
      xattrs = packed.internXattrs(m.xattrs);
      sets.set(m.xattrs, xattrs);
    }
    return { mode: m.mode, uid: m.uid, gid: m.gid, sec: m.mtime.sec, nsec: m.mtime.nsec, xattrs };
  };
  const at = <T>(path: Uint8Array, make: () => T): T => {
    try {
      return make();
    } catch (e) {
      if (e instanceof FormatError) throw new FormatError(`${quotePath(path)}: ${e.message}`, { cause: e });
      throw e;
    }
  };
  at(Uint8Array.of(0x2f), () => packed.setMeta(PackedTree.ROOT, metaOf(root.meta)));
  const ids = new Map<Inode, number>([[root, PackedTree.ROOT]]);
  const visit = (dir: Directory, dirId: number, prefix: Uint8Array) => {
    for (const { name, inode } of dir.entries()) {
      const path = childPath(prefix, name);
      let id = ids.get(inode);
      if (id !== undefined && inode.type === "directory") {
        throw new FormatError(`directory ${quotePath(path)} appears twice in the tree`);
      }
      if (id === undefined) {
        id = at(path, () => packInode(packed, inode, metaOf(inode.meta)));
        ids.set(inode, id);
      }
      packed.link(dirId, name, id);
      if (inode.type === "directory") visit(inode, id, path);
    }
  };
  visit(root, PackedTree.ROOT, new Uint8Array(0));
  return packed;
}

function packInode(tree: PackedTree, i: Inode, m: InodeMeta): number {
  switch (i.type) {
    case "directory":
      return tree.addDirectory(m);
    case "file":
      if (i.content) {
        if (i.content.length !== i.size) {
          throw new FormatError(`inline content is ${i.content.length} bytes, size says ${i.size}`);
        }
        return tree.addInlineFile(m, i.content);
      }
      if (i.size === 0) return tree.addInlineFile(m, new Uint8Array(0));
      return tree.addExternalFile(m, i.size, i.digest, i.payload);
    case "symlink":
      return tree.addSymlink(m, i.target);
    case "chardev":
    case "blockdev":
      return tree.addDevice(m, i.type, i.rdev);
    default:
      return tree.addSpecial(m, i.type);
  }
}

/**
 * The EROFS composefs image of `tree`, front to back, in chunks of up to 1 MiB
 * (each a view that is valid only until the next is asked for). Throws a
 * {@link FormatError} naming the path when the tree cannot be written (a directory
 * reachable twice, a field out of range, a hardlinked whiteout, an image too big).
 */
export function erofsChunks(tree: PackedTree, options: ErofsOptions = {}): Generator<Uint8Array> {
  return emit(new Plan(tree, options), options.version ?? 1);
}

/** The EROFS composefs image of `tree`, as bytes (see {@link erofsChunks}). */
export function writeErofs(tree: ImageTree, options: ErofsOptions = {}): Uint8Array {
  const parts: Uint8Array[] = [];
  let total = 0;
  for (const chunk of erofsChunks(packTree(tree), options)) {
    parts.push(chunk.slice());
    total += chunk.length;
  }
  return concat(parts, total);
}

/**
 * The dumpfile entries `composefs-info dump` prints for the image
 * {@link writeErofs} makes of `tree`: {@link treeToDump} with each directory's size
 * in the image.
 */
export function imageDump(tree: ImageTree, options: ErofsOptions = {}): Generator<DumpEntry> {
  const t = packTree(tree);
  const plan = new Plan(t, options);
  return treeToDump(t, { directorySize: (dir) => plan.size[plan.table.nodeOfInode(dir)] });
}

const CHUNK = 1 << 20;
const ZEROS = new Uint8Array(CHUNK);

/**
 * The image's bytes front to back: writes land at increasing offsets into a
 * 1 MiB window, and what lies before the window is handed out.
 */
class Emitter {
  readonly buf = new Uint8Array(CHUNK);
  readonly view = new DataView(this.buf.buffer);
  /** The image offset of `buf[0]`. */
  start = 0;

  /** Makes [off, off + len) writable at `buf[off - start]` (len at most 1 MiB). */
  *reach(off: number, len: number): Generator<Uint8Array> {
    if (off + len > this.start + CHUNK) yield* this.flushTo(off);
  }

  /** Hands out everything before `off`, which becomes the window's start. */
  *flushTo(off: number): Generator<Uint8Array> {
    const filled = Math.min(off - this.start, CHUNK);
    if (filled > 0) yield this.buf.subarray(0, filled);
    for (let left = off - this.start - filled; left > 0; left -= CHUNK) yield ZEROS.subarray(0, Math.min(left, CHUNK));
    this.buf.fill(0);
    this.start = off;
  }

  /** Writes `bytes` at `off`, in pieces. */
  *copy(off: number, bytes: Uint8Array): Generator<Uint8Array> {
    for (let p = 0; p < bytes.length; p += CHUNK) {
      const piece = bytes.subarray(p, p + CHUNK);
      yield* this.reach(off + p, piece.length);
      this.buf.set(piece, off + p - this.start);
    }
  }

  at(off: number): number {
    return off - this.start;
  }
}

/** Writes the entries `from` to `to` of a directory as one block's worth at `off`. */
function writeDirentBlock(plan: Plan, em: Emitter, off: number, d: Dirents, from: number, to: number): void {
  let nameoff = (to - from) * DIRENT_SIZE;
  let o = em.at(off);
  for (let k = from; k < to; k++) {
    const e = d.at(k);
    const node = d.target(e);
    writeDirent(em.view, o, plan.nid[node], nameoff, FT[plan.table.kind(node)]);
    nameoff += d.name(e).length;
    o += DIRENT_SIZE;
  }
  for (let k = from; k < to; k++) {
    const name = d.name(d.at(k));
    em.buf.set(name, o);
    o += name.length;
  }
}

function* emit(plan: Plan, requested: 0 | 1): Generator<Uint8Array> {
  const { table, tree } = plan;
  const version = table.hasWhiteout ? 1 : requested;
  const total = plan.dataStart + plan.dataBlocks * BLOCK_SIZE;
  const em = new Emitter();
  yield* em.reach(0, SUPERBLOCK_OFFSET + SUPERBLOCK_SIZE);
  writeComposefsHeader(em.view, { flags: plan.shared.hasAcl ? COMPOSEFS_FLAGS_HAS_ACL : 0, composefsVersion: version });
  writeSuperblock(em.view, {
    rootNid: plan.nid[0],
    inodes: table.count,
    buildTime: plan.minMtime,
    blocks: total / BLOCK_SIZE,
    metaBlkaddr: 0,
    xattrBlkaddr: Math.floor(plan.inodesEnd / BLOCK_SIZE),
  });
  const sharedBase = plan.inodesEnd % BLOCK_SIZE;

  for (let n = 0; n < table.count; n++) {
    const off = plan.nid[n] * SLOT_SIZE;
    const compact = (plan.flags[n] & COMPACT) !== 0;
    const inodeSize = compact ? COMPACT_INODE_SIZE : EXTENDED_INODE_SIZE;
    const tail = plan.tail[n];
    yield* em.reach(off, inodeSize + plan.xattrSize[n] + tail);
    const kind = table.kind(n);
    const i = table.metaInode(n);
    let dataLayout = tail > 0 ? LAYOUT_FLAT_INLINE : LAYOUT_FLAT_PLAIN;
    let u = plan.nBlocks[n] > 0 ? plan.blkaddr[n] : 0;
    if (kind === "chardev" || kind === "blockdev") u = table.isStub(n) ? 0 : tree.rdev(i);
    if (table.isExternal(n)) {
      dataLayout = LAYOUT_CHUNK_BASED;
      u = chunkBits(plan.size[n]) - BLOCK_BITS;
    }
    const xattrSize = plan.xattrSize[n];
    let o = em.at(off);
    o += writeInode(em.view, o, {
      compact,
      layout: dataLayout,
      xattrIcount: xattrSize === 0 ? 0 : (xattrSize - XATTR_IBODY_HEADER_SIZE) / 4 + 1,
      mode: INODE_TYPE_BITS[kind] | (table.isStub(n) ? 0o644 : tree.mode(i)),
      nlink: table.nlink(n),
      size: plan.size[n],
      u,
      ino: n,
      uid: tree.uid(i),
      gid: tree.gid(i),
      mtime: { sec: tree.sec(i), nsec: tree.nsec(i) },
    });
    if (xattrSize > 0) {
      const { list, offsets } = plan.shared.xattrs(n);
      let filter = 0;
      for (const x of list) filter |= 1 << filterBit(x.name);
      em.view.setUint32(o, (~filter) >>> 0, true);
      let refs = 0;
      let w = o + XATTR_IBODY_HEADER_SIZE;
      for (let k = 0; k < list.length && refs < MAX_SHARED_PER_INODE; k++) {
        if (offsets[k] < 0) continue;
        em.view.setUint32(w, (sharedBase + offsets[k]) / 4, true);
        w += 4;
        refs++;
      }
      em.buf[o + 4] = refs;
      let counted = 0;
      for (let k = 0; k < list.length; k++) {
        if (offsets[k] >= 0 && counted < MAX_SHARED_PER_INODE) {
          counted++;
          continue;
        }
        w = writeXattrEntry(em.buf, w, list[k].name, list[k].value);
      }
      o += xattrSize;
    }
    if (tail > 0) {
      if (kind === "directory") {
        const d = new Dirents(table, n);
        const blocks = d.blocks();
        writeDirentBlock(plan, em, off + (o - em.at(off)), d, blocks[blocks.length - 2], blocks[blocks.length - 1]);
      } else if (kind === "symlink") {
        em.buf.set(tree.target(i), o);
      } else if (table.isExternal(n)) {
        for (let c = 0; c < tail; c += 4) em.view.setUint32(o + c, NULL_ADDR, true);
      } else {
        const content = tree.content(i)!;
        em.buf.set(content.subarray(content.length - tail), o);
      }
    }
  }

  let off = plan.inodesEnd;
  for (const x of plan.shared.entries) {
    const size = entrySize(x);
    yield* em.reach(off, size);
    writeXattrEntry(em.buf, em.at(off), x.name, x.value);
    off += size;
  }

  for (let n = 0; n < table.count; n++) {
    if (plan.nBlocks[n] === 0) continue;
    let off = plan.blkaddr[n] * BLOCK_SIZE;
    const kind = table.kind(n);
    const i = table.inodeOf(n);
    if (kind === "directory") {
      const d = new Dirents(table, n);
      const blocks = d.blocks();
      const full = plan.tail[n] > 0 ? blocks.length - 2 : blocks.length - 1;
      for (let b = 0; b < full; b++) {
        yield* em.reach(off, BLOCK_SIZE);
        writeDirentBlock(plan, em, off, d, blocks[b], blocks[b + 1]);
        off += BLOCK_SIZE;
      }
    } else if (kind === "symlink") {
      yield* em.copy(off, tree.target(i));
    } else {
      const content = tree.content(i)!;
      yield* em.copy(off, content.subarray(0, Math.min(content.length, plan.nBlocks[n] * BLOCK_SIZE)));
    }
  }
  yield* em.flushTo(total);
}
