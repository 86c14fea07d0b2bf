/**
 * The xattrs of a composefs EROFS image: which (name, value) pairs more than one
 * inode has, and so go to the image's shared table (as libcomposefs decides),
 * and each inode's xattrs with their places in that table.
 *
 * Pairs are counted without a string per inode: those of an inode's own xattr
 * set once per set, and a metacopy stub's (whose values hold a digest or a
 * path) by the digest or path kept in the packed tree, in typed-array hash
 * tables.
 *
 * @module
 */
import { roundUp, XATTR_ENTRY_SIZE, xattrFilterBit, xattrPrefix } from "./erofs_format.ts";
import { type InodeTable, metacopyValue, XATTR } from "./erofs_inodes.ts";
import { byteKey, compareBytes, type Xattr } from "./tree.ts";

/** Counts how many nodes have each value of a key kept in the tree's pool (a digest or a payload). */
class KeyCounter {
  slots: Int32Array;
  counts: Uint32Array;
  offsets: Int32Array;
  #size = 0;

  constructor(
    readonly pool: () => Uint8Array,
    readonly keyOf: (node: number) => number,
    readonly lengthOf: (node: number) => number,
  ) {
    this.slots = new Int32Array(64).fill(-1);
    this.counts = new Uint32Array(64);
    this.offsets = new Int32Array(64);
  }

  get bytes(): number {
    return this.slots.length * 12;
  }

  #hash(off: number, len: number): number {
    const p = this.pool();
    let h = 0x811c9dc5;
    for (let i = off; i < off + len; i++) h = Math.imul(h ^ p[i], 0x01000193);
    return (h ^ (h >>> 15)) >>> 0;
  }

  #equal(a: number, b: number): boolean {
    const la = this.lengthOf(a);
    if (la !== this.lengthOf(b)) return false;
    const p = this.pool();
    const oa = this.keyOf(a);
    const ob = this.keyOf(b);
    for (let i = 0; i < la; i++) if (p[oa + i] !== p[ob + i]) return false;
    return true;
  }

  /** The slot of `node`'s key (or where it would go, as -1 - slot). */
  find(node: number): number {
    const mask = this.slots.length - 1;
    for (let s = this.#hash(this.keyOf(node), this.lengthOf(node)) & mask;; s = (s + 1) & mask) {
      const v = this.slots[s];
      if (v < 0) return -1 - s;
      if (this.#equal(v, node)) return s;
    }
  }

  add(node: number): void {
    if ((this.#size + 1) * 2 > this.slots.length) this.#grow();
    const s = this.find(node);
    if (s >= 0) {
      this.counts[s]++;
      return;
    }
    this.slots[-1 - s] = node;
    this.counts[-1 - s] = 1;
    this.#size++;
  }

  #grow(): void {
    const { slots, counts } = this;
    this.slots = new Int32Array(slots.length * 2).fill(-1);
    this.counts = new Uint32Array(slots.length * 2);
    this.offsets = new Int32Array(slots.length * 2);
    for (let s = 0; s < slots.length; s++) {
      if (slots[s] < 0) continue;
      const t = -1 - this.find(slots[s]);
      this.slots[t] = slots[s];
      this.counts[t] = counts[s];
    }
  }
}

/** A pair of the shared table: its bytes, how many inodes have it, its offset (once laid out). */
interface Pair {
  x: Xattr;
  count: number;
  offset: number;
}

function pairKey(x: Xattr): string {
  return `${byteKey(x.name)}\0${byteKey(x.value)}`;
}

function isAcl(name: Uint8Array): boolean {
  return compareBytes(name, XATTR.aclAccess) === 0 || compareBytes(name, XATTR.aclDefault) === 0;
}

/** The shared xattr table of an image, and the xattrs of each of its inodes. */
export class SharedXattrs {
  /** The table's entries in on-disk order. */
  readonly entries: Xattr[];
  /** The table's size in bytes. */
  readonly size: number;
  /** Some inode has a POSIX ACL. */
  hasAcl = false;
  readonly #generic = new Map<string, Pair>();
  readonly #metacopy: KeyCounter;
  readonly #redirectPath: KeyCounter;
  readonly #redirectBytes: KeyCounter;
  /** Shared offsets of each own-xattr list's pairs, by list. */
  readonly #ownOffsets = new Map<Xattr[], Int32Array>();

  /**
   * Counts every (name, value) pair the nodes of `table` have, and puts those
   * more than one has in the shared table, sorted descending by name, then value
   * length, then value. A metacopy stub's pairs are counted by the digest or
   * payload they hold.
   */
  constructor(readonly table: InodeTable) {
    const tree = table.tree;
    const inode = (node: number) => table.inodeOf(node);
    const pool = () => tree.pool;
    this.#metacopy = new KeyCounter(pool, (n) => tree.digestOffset(inode(n)), () => 32);
    this.#redirectPath = new KeyCounter(pool, (n) => tree.payloadDigestOffset(inode(n)), () => 32);
    this.#redirectBytes = new KeyCounter(
      pool,
      (n) => tree.payloadOffset(inode(n)),
      (n) => tree.payloadLength(inode(n)),
    );
    const generic = this.#generic;
    const count = (x: Xattr, times = 1) => {
      const k = pairKey(x);
      const p = generic.get(k);
      if (p) p.count += times;
      else generic.set(k, { x, count: times, offset: -1 });
    };
    const ownUses = new Map<Xattr[], number>();
    for (let n = 0; n < table.count; n++) {
      const own = table.ownXattrs(n);
      if (table.isExternal(n)) {
        ownUses.set(own, (ownUses.get(own) ?? 0) + 1);
        const i = table.inodeOf(n);
        if (tree.digestOffset(i) >= 0) this.#metacopy.add(n);
        else count({ name: XATTR.metacopy, value: metacopyValue(null) });
        if (tree.payloadDigestOffset(i) >= 0) this.#redirectPath.add(n);
        else if (tree.payloadOffset(i) >= 0) this.#redirectBytes.add(n);
      } else if (table.markerXattrs(n).length === 0) {
        ownUses.set(own, (ownUses.get(own) ?? 0) + 1);
      } else {
        for (const x of table.xattrs(n)) count(x);
      }
      if (own.length > 0 && own.some((x) => isAcl(x.name))) this.hasAcl = true;
    }
    for (const [own, uses] of ownUses) for (const x of own) count(x, uses);

    const shared: { x: Xattr; set: (offset: number) => void }[] = [];
    for (const p of generic.values()) if (p.count > 1) shared.push({ x: p.x, set: (o) => (p.offset = o) });
    const fromCounter = (c: KeyCounter, make: (node: number) => Xattr) => {
      for (let s = 0; s < c.slots.length; s++) {
        if (c.slots[s] >= 0 && c.counts[s] > 1) shared.push({ x: make(c.slots[s]), set: (o) => (c.offsets[s] = o) });
      }
    };
    fromCounter(this.#metacopy, (n) => table.stubXattrs(n)[0]);
    fromCounter(this.#redirectPath, (n) => table.stubXattrs(n)[1]);
    fromCounter(this.#redirectBytes, (n) => table.stubXattrs(n)[1]);
    shared.sort((a, b) =>
      compareBytes(b.x.name, a.x.name) || b.x.value.length - a.x.value.length || compareBytes(b.x.value, a.x.value)
    );
    let offset = 0;
    for (const s of shared) {
      s.set(offset);
      offset += entrySize(s.x);
    }
    this.entries = shared.map((s) => s.x);
    this.size = offset;
  }

  /** Bytes of the counts and the table. */
  get bytes(): number {
    return this.#metacopy.bytes + this.#redirectPath.bytes + this.#redirectBytes.bytes + this.size * 4;
  }

  /** The shared-table offset of `x` as node `n` has it, or -1 when it is not shared. */
  #sharedOffset(n: number, x: Xattr): number {
    if (x.name === XATTR.metacopy && x.value.length > 0) return this.#counted(this.#metacopy, n);
    if (x.name === XATTR.redirect) {
      const i = this.table.inodeOf(n);
      return this.#counted(this.table.tree.payloadDigestOffset(i) >= 0 ? this.#redirectPath : this.#redirectBytes, n);
    }
    const p = this.#generic.get(pairKey(x));
    return p && p.count > 1 ? p.offset : -1;
  }

  #counted(c: KeyCounter, n: number): number {
    const s = c.find(n);
    return c.counts[s] > 1 ? c.offsets[s] : -1;
  }

  /** Node `n`'s xattrs in image order and, for each, its shared-table offset or -1. */
  xattrs(n: number): { list: Xattr[]; offsets: ArrayLike<number> } {
    const table = this.table;
    const own = table.ownXattrs(n);
    let ownOffsets = this.#ownOffsets.get(own);
    if (!ownOffsets) {
      ownOffsets = Int32Array.from(own, (x) => this.#sharedOffset(n, x));
      this.#ownOffsets.set(own, ownOffsets);
    }
    const extra = table.isExternal(n) ? table.stubXattrs(n) : table.markerXattrs(n);
    if (extra.length === 0) return { list: own, offsets: ownOffsets };
    const list = table.xattrs(n);
    return { list, offsets: list.map((x) => this.#sharedOffset(n, x)) };
  }
}

const prefixes = new Map<Uint8Array, number>();
const filterBits = new Map<Uint8Array, number>();

/** Bytes an xattr entry takes (the prefix lookup remembered per name). */
export function entrySize(x: Xattr): number {
  let suffix = prefixes.get(x.name);
  if (suffix === undefined) {
    suffix = xattrPrefix(x.name).suffix.length;
    if (prefixes.size < 4096) prefixes.set(x.name, suffix);
  }
  return roundUp(XATTR_ENTRY_SIZE + suffix + x.value.length, 4);
}

export function filterBit(name: Uint8Array): number {
  let bit = filterBits.get(name);
  if (bit === undefined) {
    bit = xattrFilterBit(name);
    if (filterBits.size < 4096) filterBits.set(name, bit);
  }
  return bit;
}
