/**
 * The directory entries of a packed tree (`packed_tree.ts`): for each entry its
 * directory, the inode it names, its name (in one byte pool) and the next entry
 * of its directory, in typed-array columns; an open-addressing hash table over
 * (directory, name) finds an entry. Removing an entry marks it dead: lists skip
 * it, and the table forgets it when it grows.
 *
 * @module
 */
import { FormatError } from "../errors.ts";
import { nameProblem, quotePath } from "./tree.ts";

/** No entry. */
const NONE = 0xffffffff;
/** A removed entry's inode, and a removed hash slot. */
const DEAD = 0xfffffffe;

type Column = Uint8Array | Uint16Array | Uint32Array | Float64Array;

export function grown<T extends Column>(a: T, capacity: number): T {
  const b = new (a.constructor as new (n: number) => T)(capacity);
  b.set(a as never);
  return b;
}

/** A growable byte pool; data is addressed by offset. */
export class BytePool {
  bytes = new Uint8Array(1 << 12);
  length = 0;

  add(data: Uint8Array, ensure: (bytes: number) => void): number {
    const at = this.length;
    if (at + data.length > this.bytes.length) {
      const capacity = Math.max(at + data.length, Math.ceil(this.bytes.length * 1.5));
      ensure(capacity - this.bytes.length);
      this.bytes = grown(this.bytes, capacity);
    }
    this.bytes.set(data, at);
    this.length += data.length;
    return at;
  }

  view(off: number, len: number): Uint8Array {
    return this.bytes.subarray(off, off + len);
  }
}

/** The directory entries of a packed tree; see the module documentation. */
export class PackedEntries {
  #parent = new Uint32Array(1 << 10);
  #target = new Uint32Array(1 << 10);
  #name = new Uint32Array(1 << 10);
  #nameLen = new Uint8Array(1 << 10);
  #next = new Uint32Array(1 << 10);
  #count = 0;
  /** Per directory inode: its last entry + 1 (0: none). */
  #head = new Uint32Array(1 << 10);
  /** (directory, name) → entry + 1; 0 is empty, {@link DEAD} removed. */
  #slots = new Uint32Array(1 << 10);
  #used = 0;
  #names = new BytePool();

  /** `ensure(n)` is told before the entries take `n` more bytes (and may throw). */
  constructor(readonly ensure: (bytes: number) => void) {}

  get #ensure(): (bytes: number) => void {
    return this.ensure;
  }

  /** Entries made so far (alive or not). */
  get count(): number {
    return this.#count;
  }

  /** Bytes the columns, the table and the names take. */
  get bytes(): number {
    return this.#parent.length * 17 + this.#head.byteLength + this.#slots.byteLength + this.#names.bytes.length;
  }

  #grow(capacity: number): void {
    this.#ensure((capacity - this.#parent.length) * 17);
    this.#parent = grown(this.#parent, capacity);
    this.#target = grown(this.#target, capacity);
    this.#name = grown(this.#name, capacity);
    this.#nameLen = grown(this.#nameLen, capacity);
    this.#next = grown(this.#next, capacity);
  }

  #hash(dir: number, name: Uint8Array, off = 0, len = name.length): number {
    let h = (0x811c9dc5 ^ dir) >>> 0;
    h = Math.imul(h, 0x01000193);
    for (let i = off; i < off + len; i++) h = Math.imul(h ^ name[i], 0x01000193);
    return (h ^ (h >>> 15)) >>> 0;
  }

  #nameEquals(entry: number, name: Uint8Array): boolean {
    const len = this.#nameLen[entry];
    if (len !== name.length) return false;
    const pool = this.#names.bytes;
    const off = this.#name[entry];
    for (let i = 0; i < len; i++) if (pool[off + i] !== name[i]) return false;
    return true;
  }

  /** The slot of (dir, name), or of where it would go (the first free slot met) with `insert`. */
  #find(dir: number, name: Uint8Array): number {
    const mask = this.#slots.length - 1;
    for (let s = this.#hash(dir, name) & mask;; s = (s + 1) & mask) {
      const v = this.#slots[s];
      if (v === 0) return -1 - s;
      if (v !== DEAD && this.#parent[v - 1] === dir && this.#nameEquals(v - 1, name)) return s;
    }
  }

  #rehash(capacity: number): void {
    this.#ensure(capacity * 4 - this.#slots.byteLength);
    const slots = new Uint32Array(capacity);
    const mask = capacity - 1;
    const pool = this.#names.bytes;
    let used = 0;
    for (const v of this.#slots) {
      if (v === 0 || v === DEAD) continue;
      const e = v - 1;
      let s = this.#hash(this.#parent[e], pool, this.#name[e], this.#nameLen[e]) & mask;
      while (slots[s] !== 0) s = (s + 1) & mask;
      slots[s] = v;
      used++;
    }
    this.#slots = slots;
    this.#used = used;
  }

  /** The entry named `name` in directory `dir`, or -1. */
  lookup(dir: number, name: Uint8Array): number {
    const s = this.#find(dir, name);
    return s < 0 ? -1 : this.#slots[s] - 1;
  }

  /**
   * Names inode `inode` `name` in directory `dir`, replacing what had that name;
   * returns the entry. The name must be one path component (see {@link nameProblem}).
   */
  link(dir: number, name: Uint8Array, inode: number): number {
    const bad = nameProblem(name);
    if (bad) throw new FormatError(`directory entry name ${quotePath(name)} ${bad}`);
    let s = this.#find(dir, name);
    if (s >= 0) {
      const e = this.#slots[s] - 1;
      this.#target[e] = inode;
      return e;
    }
    if ((this.#used + 1) * 2 > this.#slots.length) {
      this.#rehash(this.#slots.length * 2);
      s = this.#find(dir, name);
    }
    const e = this.#count;
    if (e === this.#parent.length) this.#grow(Math.ceil(e * 1.5));
    if (dir >= this.#head.length) {
      this.#ensure(Math.max(dir + 1, this.#head.length * 1.5) * 4 - this.#head.byteLength);
      this.#head = grown(this.#head, Math.ceil(Math.max(dir + 1, this.#head.length * 1.5)));
    }
    this.#parent[e] = dir;
    this.#target[e] = inode;
    this.#name[e] = this.#names.add(name, this.#ensure);
    this.#nameLen[e] = name.length;
    this.#next[e] = this.#first(dir);
    this.#head[dir] = e + 1;
    this.#count++;
    this.#slots[-1 - s] = e + 1;
    this.#used++;
    return e;
  }

  /** Removes the entry `name` from directory `dir`; true when it was there. */
  unlink(dir: number, name: Uint8Array): boolean {
    const s = this.#find(dir, name);
    if (s < 0) return false;
    this.#target[this.#slots[s] - 1] = DEAD;
    this.#slots[s] = DEAD;
    return true;
  }

  /** Removes every entry of directory `dir`. */
  clear(dir: number): void {
    for (const e of this.entries(dir)) this.unlink(dir, this.name(e));
    if (dir < this.#head.length) this.#head[dir] = 0;
  }

  /** The live entries of directory `dir`, in no particular order. */
  *entries(dir: number): Generator<number> {
    for (let e = this.#first(dir); e !== NONE; e = this.#next[e]) if (this.#target[e] !== DEAD) yield e;
  }

  #first(dir: number): number {
    return dir < this.#head.length && this.#head[dir] !== 0 ? this.#head[dir] - 1 : NONE;
  }

  /** The entries of directory `dir` sorted by name, bytewise. */
  sortedEntries(dir: number): Uint32Array {
    let n = 0;
    for (let e = this.#first(dir); e !== NONE; e = this.#next[e]) if (this.#target[e] !== DEAD) n++;
    const out = new Uint32Array(n);
    n = 0;
    for (let e = this.#first(dir); e !== NONE; e = this.#next[e]) if (this.#target[e] !== DEAD) out[n++] = e;
    return out.sort((a, b) => this.compareNames(a, b));
  }

  /** Bytewise order of two entries' names. */
  compareNames(a: number, b: number): number {
    const pool = this.#names.bytes;
    const la = this.#nameLen[a];
    const lb = this.#nameLen[b];
    const oa = this.#name[a];
    const ob = this.#name[b];
    const n = la < lb ? la : lb;
    for (let i = 0; i < n; i++) {
      const d = pool[oa + i] - pool[ob + i];
      if (d !== 0) return d;
    }
    return la - lb;
  }

  /** The inode an entry names. */
  inode(e: number): number {
    return this.#target[e];
  }

  /** The directory an entry is in. */
  parent(e: number): number {
    return this.#parent[e];
  }

  /** An entry's name (a view into the tree: copy it to keep it). */
  name(e: number): Uint8Array {
    return this.#names.view(this.#name[e], this.#nameLen[e]);
  }
}
