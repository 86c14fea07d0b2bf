/**
 * The layout of a composefs EROFS image, as libcomposefs 1.0.8 lays it out:
 * each inode's size, compact or extended form, xattr area, inline tail, data
 * blocks, padding and nid (see `erofs_writer.ts` for the rules), in typed arrays
 * indexed by inode number.
 *
 * @module
 */
import { FormatError, LimitError } from "../errors.ts";
import {
  BLOCK_BITS,
  BLOCK_SIZE,
  CHUNK_FORMAT_BLKBITS_MASK,
  COMPACT_INODE_SIZE,
  DIRENT_SIZE,
  EXTENDED_INODE_SIZE,
  MAX_SHARED_PER_INODE,
  roundUp,
  SLOT_SIZE,
  SUPERBLOCK_OFFSET,
  SUPERBLOCK_SIZE,
  XATTR_IBODY_HEADER_SIZE,
} from "./erofs_format.ts";
import { collectInodes, type InodeTable } from "./erofs_inodes.ts";
import { entrySize, SharedXattrs } from "./erofs_xattrs.ts";
import type { PackedTree } from "./packed_tree.ts";
import { compareBytes, type Timespec } from "./tree.ts";

/** Options of a {@link Plan}. */
export interface LayoutOptions {
  /** Bytes the tree and the writer's tables together may take; past it, a {@link LimitError} (default: no limit). */
  limit?: number;
  /** How the limit is named in that error (default "the memory limit"). */
  limitName?: string;
}

const NAME_DOT = new TextEncoder().encode(".");
const NAME_DOTDOT = new TextEncoder().encode("..");
/** Dirent codes of `.` and `..` in a {@link Dirents} order. */
const DOT = -1;
const DOTDOT = -2;

/** A directory's entries in the image's order: its sorted entries, with `.` and `..` where they sort. */
export class Dirents {
  readonly entries: Uint32Array;
  readonly #dot: number;
  readonly #dotdot: number;

  constructor(readonly table: InodeTable, readonly node: number) {
    this.entries = table.entries(node);
    let dot = 0;
    while (dot < this.entries.length && compareBytes(table.entryName(this.entries[dot]), NAME_DOT) < 0) dot++;
    let dotdot = dot;
    while (dotdot < this.entries.length && compareBytes(table.entryName(this.entries[dotdot]), NAME_DOTDOT) < 0) {
      dotdot++;
    }
    this.#dot = dot;
    this.#dotdot = dotdot + 1;
  }

  get length(): number {
    return this.entries.length + 2;
  }

  /** The `k`th dirent: an entry id, or {@link DOT} or {@link DOTDOT}. */
  at(k: number): number {
    if (k < this.#dot) return this.entries[k];
    if (k === this.#dot) return DOT;
    if (k < this.#dotdot) return this.entries[k - 1];
    if (k === this.#dotdot) return DOTDOT;
    return this.entries[k - 2];
  }

  name(d: number): Uint8Array {
    return d === DOT ? NAME_DOT : d === DOTDOT ? NAME_DOTDOT : this.table.entryName(d);
  }

  /** The node a dirent names. */
  target(d: number): number {
    if (d === DOT) return this.node;
    if (d === DOTDOT) return this.node === 0 ? 0 : this.table.parentNode(this.node);
    return this.table.nodeOfEntry(d);
  }

  /** Where each block of entries starts (dirent index), and one past the last. */
  blocks(): number[] {
    const starts = [0];
    let used = 0;
    for (let k = 0; k < this.length; k++) {
      const len = DIRENT_SIZE + this.name(this.at(k)).length;
      if (used + len > BLOCK_SIZE) {
        starts.push(k);
        used = 0;
      }
      used += len;
    }
    starts.push(this.length);
    return starts;
  }

  /** Bytes of the entries `from` to `to` (dirents and names). */
  bytes(from: number, to: number): number {
    let n = 0;
    for (let k = from; k < to; k++) n += DIRENT_SIZE + this.name(this.at(k)).length;
    return n;
  }
}

/** Node flags of the layout. */
export const COMPACT = 1;
export const PROMOTED = 2;

/** The largest xattr area an inode can have: its size in 4-byte words (less one) is a u16. */
const MAX_XATTR_AREA = XATTR_IBODY_HEADER_SIZE + 4 * (0xffff - 1);

/** Everything about an image but its bytes: its inode table, its shared xattrs, each inode's place. */
export class Plan {
  readonly table: InodeTable;
  readonly tree: PackedTree;
  /** Per node: directory size or file size; nid; first data block; data blocks; inline tail; xattr area; flags. */
  readonly size: Float64Array;
  readonly nid: Float64Array;
  readonly blkaddr: Uint32Array;
  readonly nBlocks: Uint32Array;
  readonly tail: Uint16Array;
  readonly xattrSize: Uint32Array;
  readonly flags: Uint8Array;
  /** The image's build time: the oldest mtime of all. */
  minMtime: Timespec = { sec: 0, nsec: 0 };
  readonly shared: SharedXattrs;
  /** Where the inodes end, the data blocks start, and how many there are. */
  inodesEnd = 0;
  dataStart = 0;
  dataBlocks = 0;

  constructor(tree: PackedTree, readonly options: LayoutOptions) {
    this.tree = tree;
    this.table = collectInodes(tree);
    const n = this.table.count;
    this.size = new Float64Array(n);
    this.nid = new Float64Array(n);
    this.blkaddr = new Uint32Array(n);
    this.nBlocks = new Uint32Array(n);
    this.tail = new Uint16Array(n);
    this.xattrSize = new Uint32Array(n);
    this.flags = new Uint8Array(n);
    this.#checkLimit(0);
    this.#prepare();
    this.shared = new SharedXattrs(this.table);
    this.#checkLimit(this.shared.bytes);
    this.#layout();
  }

  /** Throws the `LimitError` when the tree and this plan's tables (with `more` bytes) pass the limit. */
  #checkLimit(more: number): void {
    const limit = this.options.limit;
    if (limit === undefined) return;
    const n = this.table.count;
    const bytes = this.tree.bytes + this.table.bytes + n * 39 + more;
    if (bytes > limit) {
      throw new LimitError(
        `writing the composefs image of ${n} inodes needs more than ${this.options.limitName ?? "the memory limit"}; ` +
          "raise it",
      );
    }
  }

  /** Checks what the packed tree did not, and finds the build time. */
  #prepare(): void {
    const { table, tree } = this;
    let min: Timespec | undefined;
    for (let n = 0; n < table.count; n++) {
      const i = table.metaInode(n);
      const sec = tree.sec(i);
      const nsec = tree.nsec(i);
      if (!min || sec < min.sec || (sec === min.sec && nsec < min.nsec)) min = { sec, nsec };
      if (table.isStub(n)) continue;
      const check = (ok: boolean, what: string) => {
        if (!ok) throw new FormatError(`${table.path(n)}: ${what}`);
      };
      for (const x of table.ownXattrs(n)) {
        check(x.name.length <= 255, "an escaped trusted.overlay xattr name is longer than 255 bytes");
      }
      const inode = table.inodeOf(n);
      switch (table.kind(n)) {
        case "file":
          if (table.isExternal(n)) {
            // One chunk covers at most 2^43 bytes; larger stubs would need a chunk table.
            check(
              tree.size(inode) <= 2 ** 43,
              `external files larger than 8 TiB are not supported (size ${tree.size(inode)})`,
            );
          }
          this.size[n] = table.isWhiteout(n) ? 0 : tree.size(inode);
          break;
        case "symlink": {
          const target = tree.target(inode);
          check(
            target.length > 0 && target.length < 4096 && !target.includes(0),
            "symlink target is empty, too long or has NUL",
          );
          this.size[n] = target.length;
          break;
        }
      }
    }
    this.minMtime = min!;
  }

  /** Decides each inode's size, data blocks, inline tail, padding and nid. */
  #layout(): void {
    const { table, tree } = this;
    let pos = SUPERBLOCK_OFFSET + SUPERBLOCK_SIZE;
    const metaStart = Math.floor(pos / BLOCK_SIZE) * BLOCK_SIZE;
    let dataBlocks = 0;
    for (let n = 0; n < table.count; n++) {
      const { list, offsets } = this.shared.xattrs(n);
      if (list.length > 0) {
        let refs = 0;
        let size = XATTR_IBODY_HEADER_SIZE;
        for (let k = 0; k < list.length; k++) {
          if (offsets[k] >= 0 && refs < MAX_SHARED_PER_INODE) {
            refs++;
            size += 4;
          } else {
            size += entrySize(list[k]);
          }
        }
        const area = roundUp(size, 4);
        if (area > MAX_XATTR_AREA) {
          throw new FormatError(`${table.path(n)}: its xattrs take ${area} bytes, more than an inode holds`);
        }
        this.xattrSize[n] = area;
      }
      const kind = table.kind(n);
      let nBlocks = 0;
      let tail = 0;
      if (kind === "directory") {
        const d = new Dirents(table, n);
        const blocks = d.blocks();
        tail = d.bytes(blocks[blocks.length - 2], blocks[blocks.length - 1]);
        let full = blocks.length - 2;
        if (tail > BLOCK_SIZE / 2) {
          full++;
          tail = 0;
        }
        nBlocks = full;
        this.size[n] = full * BLOCK_SIZE + tail;
      } else if (kind === "symlink") {
        tail = this.size[n];
      } else if (kind === "file" && this.size[n] > 0) {
        if (!table.isExternal(n)) {
          nBlocks = Math.floor(this.size[n] / BLOCK_SIZE);
          tail = this.size[n] % BLOCK_SIZE;
          if (tail > BLOCK_SIZE / 2) {
            nBlocks++;
            tail = 0;
          }
        } else {
          tail = 4; // one chunk (checked above), a null address
        }
      }
      const i = table.metaInode(n);
      const compact = tree.sec(i) === this.minMtime.sec && tree.nsec(i) === this.minMtime.nsec &&
        table.nlink(n) <= 0xffff && tree.uid(i) <= 0xffff && tree.gid(i) <= 0xffff && this.size[n] <= 0xffffffff;
      let flags = compact ? COMPACT : 0;
      const inodeSize = compact ? COMPACT_INODE_SIZE : EXTENDED_INODE_SIZE;
      if (kind === "symlink" && inodeSize + this.xattrSize[n] + tail >= BLOCK_SIZE) {
        // The target does not fit in the inode's block: it goes to a data block.
        flags |= PROMOTED;
        nBlocks = 1;
        tail = 0;
      }

      pos = roundUp(pos, SLOT_SIZE);
      const nonTail = inodeSize + this.xattrSize[n];
      let pad = 0;
      if (kind === "symlink") {
        const total = nonTail + (flags & PROMOTED ? this.size[n] : tail);
        if (Math.floor(pos / BLOCK_SIZE) !== Math.floor((pos + total - 1) / BLOCK_SIZE)) {
          pad = roundUp(pos, BLOCK_SIZE) - pos;
        }
      } else if (tail > 0) {
        // Start the tail in the next block if it would cross one. A tail is at most half a
        // block, so after rounding up to the next slot (at most 31 bytes into the block) it fits.
        const remainder = BLOCK_SIZE - ((pos + nonTail) % BLOCK_SIZE);
        if (remainder < tail) pad = roundUp(remainder, SLOT_SIZE);
      }
      pos += pad;
      this.nid[n] = (pos - metaStart) / SLOT_SIZE;
      pos += nonTail + tail;
      this.nBlocks[n] = nBlocks;
      this.tail[n] = tail;
      this.flags[n] = flags;
      dataBlocks += nBlocks;
    }
    if (this.nid[0] > 0xffff) throw new FormatError("the root inode does not fit in the first 2 MiB of the image");
    this.inodesEnd = roundUp(pos, SLOT_SIZE);
    this.dataStart = roundUp(this.inodesEnd + this.shared.size, BLOCK_SIZE);
    let block = this.dataStart / BLOCK_SIZE;
    for (let n = 0; n < table.count; n++) {
      if (this.nBlocks[n] > 0) {
        this.blkaddr[n] = block;
        block += this.nBlocks[n];
      }
    }
    this.dataBlocks = dataBlocks;
    if (this.dataStart / BLOCK_SIZE + dataBlocks > 0xffffffff) {
      throw new FormatError("the image would be larger than EROFS allows");
    }
  }
}

/** Bits of a chunk's size: the smallest power of two at least the file size, at least a block. */
export function chunkBits(size: number): number {
  let bits = BLOCK_BITS;
  while (bits < CHUNK_FORMAT_BLKBITS_MASK + BLOCK_BITS && 2 ** bits < size) bits++;
  return bits;
}
