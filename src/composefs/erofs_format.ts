/**
 * The on-disk structures of a composefs EROFS image (little-endian throughout),
 * as the kernel's `fs/erofs/erofs_fs.h` and libcomposefs `lcfs-erofs.h` define
 * them, with the encoders the writer uses. Only what composefs images contain is
 * here: uncompressed 4096-byte blocks, compact and extended inodes, flat and
 * chunk-based data layouts, inline and shared xattrs with the name filter.
 *
 * Image layout: the 32-byte composefs header (padded to 1024 bytes), the 128-byte
 * EROFS superblock, the inodes (32-byte slots, so an inode's number, its nid, is
 * its offset / 32), the shared xattr table, then the data blocks.
 *
 * @module
 */

/** EROFS block size (log2 12), the only one composefs uses. */
export const BLOCK_SIZE = 4096;
/** log2 of {@link BLOCK_SIZE}. */
export const BLOCK_BITS = 12;
/** Inodes start on 32-byte slots; a nid is a slot number. */
export const SLOT_SIZE = 32;

/** The composefs header's magic, first 4 bytes of an image. */
export const COMPOSEFS_MAGIC = 0xd078629a;
/** The composefs header's `version` field (the header layout's version, always 1). */
export const COMPOSEFS_HEADER_VERSION = 1;
/** Header flag: some inode has a POSIX ACL xattr. */
export const COMPOSEFS_FLAGS_HAS_ACL = 1;
/** Size of the composefs header (the rest of the first 1024 bytes is zero). */
export const COMPOSEFS_HEADER_SIZE = 32;

/** Where the EROFS superblock starts. */
export const SUPERBLOCK_OFFSET = 1024;
/** Size of the EROFS superblock. */
export const SUPERBLOCK_SIZE = 128;
/** EROFS superblock magic. */
export const EROFS_MAGIC = 0xe0f5e1e2;
/** feature_compat: inodes carry mtimes. */
export const FEATURE_COMPAT_MTIME = 0x2;
/** feature_compat: inline xattr headers carry a name (Bloom) filter. */
export const FEATURE_COMPAT_XATTR_FILTER = 0x4;

/** Size of a compact inode. */
export const COMPACT_INODE_SIZE = 32;
/** Size of an extended inode. */
export const EXTENDED_INODE_SIZE = 64;

/** Data layout: the data is in `blocks` consecutive blocks at `raw_blkaddr`. */
export const LAYOUT_FLAT_PLAIN = 0;
/** Data layout: like flat plain, but the last partial block follows the inode. */
export const LAYOUT_FLAT_INLINE = 2;
/** Data layout: a table of chunk block addresses follows the inode. */
export const LAYOUT_CHUNK_BASED = 4;
/** Chunk format: low 5 bits are log2(chunk size) - {@link BLOCK_BITS}. */
export const CHUNK_FORMAT_BLKBITS_MASK = 0x1f;
/** A chunk address meaning "hole": composefs stubs have no data in the image. */
export const NULL_ADDR = 0xffffffff;

/** Directory entry file types. */
export const FT = {
  file: 1,
  directory: 2,
  chardev: 3,
  blockdev: 4,
  fifo: 5,
  socket: 6,
  symlink: 7,
} as const;

/** Size of a directory entry (the names follow all the entries of a block). */
export const DIRENT_SIZE = 12;

/** Size of the header in front of an inode's xattrs. */
export const XATTR_IBODY_HEADER_SIZE = 12;
/** Size of an xattr entry header (name length, prefix index, value size). */
export const XATTR_ENTRY_SIZE = 4;
/** Seed of the xattr name filter hash (xxh32 of the name suffix, seed + prefix index). */
export const XATTR_FILTER_SEED = 0x25bbe08f;
/** Most shared xattrs one inode may reference (EROFS_XATTR_LONG_PREFIX). */
export const MAX_SHARED_PER_INODE = 0x80;

const te = new TextEncoder();

/**
 * The xattr name prefixes EROFS abbreviates to an index, in the order libcomposefs
 * 1.0.8 tries them (it has no `lustre.`, index 5). A name matching none is stored
 * whole with index 0.
 */
const XATTR_PREFIXES: [Uint8Array, number][] = [
  [te.encode("user."), 1],
  [te.encode("system.posix_acl_access"), 2],
  [te.encode("system.posix_acl_default"), 3],
  [te.encode("trusted."), 4],
  [te.encode("security."), 6],
];

/** True when `bytes` begins with `prefix`. */
export function startsWith(bytes: Uint8Array, prefix: Uint8Array): boolean {
  if (bytes.length < prefix.length) return false;
  for (let i = 0; i < prefix.length; i++) if (bytes[i] !== prefix[i]) return false;
  return true;
}

/** Splits an xattr name into its prefix index and the rest, as stored in an entry. */
export function xattrPrefix(name: Uint8Array): { index: number; suffix: Uint8Array } {
  for (const [prefix, index] of XATTR_PREFIXES) {
    if (startsWith(name, prefix)) {
      return { index, suffix: name.subarray(prefix.length) };
    }
  }
  return { index: 0, suffix: name };
}

/** Rounds `n` up to a multiple of `align` (a power of two). */
export function roundUp(n: number, align: number): number {
  return Math.ceil(n / align) * align;
}

/** Bytes an xattr entry takes: header, suffix and value, padded to 4. */
export function xattrEntrySize(name: Uint8Array, valueLength: number): number {
  return roundUp(XATTR_ENTRY_SIZE + xattrPrefix(name).suffix.length + valueLength, 4);
}

/** Writes an xattr entry at `off` of `out` (zeroed); returns the offset after it. */
export function writeXattrEntry(out: Uint8Array, off: number, name: Uint8Array, value: Uint8Array): number {
  const { index, suffix } = xattrPrefix(name);
  out[off] = suffix.length;
  out[off + 1] = index;
  out[off + 2] = value.length & 0xff;
  out[off + 3] = value.length >>> 8;
  out.set(suffix, off + XATTR_ENTRY_SIZE);
  out.set(value, off + XATTR_ENTRY_SIZE + suffix.length);
  return off + roundUp(XATTR_ENTRY_SIZE + suffix.length + value.length, 4);
}

/** The bit an xattr sets in its inode's name filter. */
export function xattrFilterBit(name: Uint8Array): number {
  const { index, suffix } = xattrPrefix(name);
  return xxh32(suffix, (XATTR_FILTER_SEED + index) >>> 0) & 31;
}

const P1 = 2654435761;
const P2 = 2246822519;
const P3 = 3266489917;
const P4 = 668265263;
const P5 = 374761393;

function rotl(x: number, r: number): number {
  return ((x << r) | (x >>> (32 - r))) >>> 0;
}

function le32(b: Uint8Array, i: number): number {
  return (b[i] | (b[i + 1] << 8) | (b[i + 2] << 16) | (b[i + 3] << 24)) >>> 0;
}

function round(acc: number, input: number): number {
  return Math.imul(rotl((acc + Math.imul(input, P2)) >>> 0, 13), P1) >>> 0;
}

/** The xxHash32 of `input` (the hash EROFS uses for its xattr name filter). */
export function xxh32(input: Uint8Array, seed: number): number {
  const len = input.length;
  let p = 0;
  let h: number;
  if (len >= 16) {
    let v1 = (seed + P1 + P2) >>> 0;
    let v2 = (seed + P2) >>> 0;
    let v3 = seed >>> 0;
    let v4 = (seed - P1) >>> 0;
    const limit = len - 16;
    do {
      v1 = round(v1, le32(input, p));
      v2 = round(v2, le32(input, p + 4));
      v3 = round(v3, le32(input, p + 8));
      v4 = round(v4, le32(input, p + 12));
      p += 16;
    } while (p <= limit);
    h = (rotl(v1, 1) + rotl(v2, 7) + rotl(v3, 12) + rotl(v4, 18)) >>> 0;
  } else {
    h = (seed + P5) >>> 0;
  }
  h = (h + len) >>> 0;
  for (; p + 4 <= len; p += 4) {
    h = Math.imul(rotl((h + Math.imul(le32(input, p), P3)) >>> 0, 17), P4) >>> 0;
  }
  for (; p < len; p++) {
    h = Math.imul(rotl((h + Math.imul(input[p], P5)) >>> 0, 11), P1) >>> 0;
  }
  h = (h ^ (h >>> 15)) >>> 0;
  h = Math.imul(h, P2) >>> 0;
  h = (h ^ (h >>> 13)) >>> 0;
  h = Math.imul(h, P3) >>> 0;
  return (h ^ (h >>> 16)) >>> 0;
}

/** The fields of the composefs header. */
export interface ComposefsHeader {
  flags: number;
  /** The composefs format version (0 or 1), not the header's own version. */
  composefsVersion: number;
}

/** Writes the composefs header at offset 0 of a zeroed image. */
export function writeComposefsHeader(view: DataView, h: ComposefsHeader): void {
  view.setUint32(0, COMPOSEFS_MAGIC, true);
  view.setUint32(4, COMPOSEFS_HEADER_VERSION, true);
  view.setUint32(8, h.flags, true);
  view.setUint32(12, h.composefsVersion, true);
}

/** The superblock fields composefs sets (all others are zero). */
export interface Superblock {
  rootNid: number;
  inodes: number;
  buildTime: { sec: number; nsec: number };
  blocks: number;
  metaBlkaddr: number;
  xattrBlkaddr: number;
}

/** Writes the superblock at {@link SUPERBLOCK_OFFSET} of a zeroed image. */
export function writeSuperblock(view: DataView, sb: Superblock): void {
  const o = SUPERBLOCK_OFFSET;
  view.setUint32(o, EROFS_MAGIC, true);
  view.setUint32(o + 8, FEATURE_COMPAT_MTIME | FEATURE_COMPAT_XATTR_FILTER, true);
  view.setUint8(o + 12, BLOCK_BITS);
  view.setUint16(o + 14, sb.rootNid, true);
  view.setBigUint64(o + 16, BigInt(sb.inodes), true);
  view.setBigUint64(o + 24, BigInt.asUintN(64, BigInt(sb.buildTime.sec)), true);
  view.setUint32(o + 32, sb.buildTime.nsec, true);
  view.setUint32(o + 36, sb.blocks, true);
  view.setUint32(o + 40, sb.metaBlkaddr, true);
  view.setUint32(o + 44, sb.xattrBlkaddr, true);
}

/** The fields of an inode, compact or extended. */
export interface InodeFields {
  compact: boolean;
  layout: number;
  xattrIcount: number;
  /** Full st_mode. */
  mode: number;
  nlink: number;
  size: number;
  /** raw_blkaddr, rdev or chunk format, by file type and layout. */
  u: number;
  ino: number;
  uid: number;
  gid: number;
  mtime: { sec: number; nsec: number };
}

/** Writes an inode at `off` of a zeroed image; returns its size. */
export function writeInode(view: DataView, off: number, i: InodeFields): number {
  view.setUint16(off, (i.layout << 1) | (i.compact ? 0 : 1), true);
  view.setUint16(off + 2, i.xattrIcount, true);
  view.setUint16(off + 4, i.mode, true);
  if (i.compact) {
    view.setUint16(off + 6, i.nlink, true);
    view.setUint32(off + 8, i.size, true);
    view.setUint32(off + 16, i.u, true);
    view.setUint32(off + 20, i.ino, true);
    view.setUint16(off + 24, i.uid, true);
    view.setUint16(off + 26, i.gid, true);
    return COMPACT_INODE_SIZE;
  }
  view.setBigUint64(off + 8, BigInt(i.size), true);
  view.setUint32(off + 16, i.u, true);
  view.setUint32(off + 20, i.ino, true);
  view.setUint32(off + 24, i.uid, true);
  view.setUint32(off + 28, i.gid, true);
  view.setBigUint64(off + 32, BigInt.asUintN(64, BigInt(i.mtime.sec)), true);
  view.setUint32(off + 40, i.mtime.nsec, true);
  view.setUint32(off + 44, i.nlink, true);
  return EXTENDED_INODE_SIZE;
}

/** Writes a directory entry at `off`. */
export function writeDirent(view: DataView, off: number, nid: number, nameoff: number, fileType: number): void {
  view.setBigUint64(off, BigInt(nid), true);
  view.setUint16(off + 8, nameoff, true);
  view.setUint8(off + 10, fileType);
}
