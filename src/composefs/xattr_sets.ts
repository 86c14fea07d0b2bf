/**
 * The xattr sets of a packed tree (`packed_tree.ts`): each distinct set of
 * (name, value) pairs kept once, sorted by name, and named by a number that the
 * inodes holding it keep. Set 0 is the empty one.
 *
 * @module
 */
import { FormatError } from "../errors.ts";
import { byteKey, compareBytes, type Xattr } from "./tree.ts";

/** Interned xattr sets; see the module documentation. */
export class XattrSets {
  #sets: Xattr[][] = [[]];
  #ids = new Map<string, number>([["", 0]]);
  #bytes = 0;

  /** `ensure(n)` is told before the sets take `n` more bytes (and may throw). */
  constructor(readonly ensure: (bytes: number) => void) {}

  /** Bytes the sets take (an estimate: their bytes, keys and objects). */
  get bytes(): number {
    return this.#bytes;
  }

  /**
   * The id of the set holding `xattrs` (names unique): equal sets get one id. A
   * name that is empty, over 255 bytes or holds NUL, or a value over 65535 bytes,
   * is a {@link FormatError}.
   */
  intern(xattrs: Iterable<Xattr>): number {
    const sorted = [...xattrs].sort((a, b) => compareBytes(a.name, b.name));
    if (sorted.length === 0) return 0;
    for (const x of sorted) {
      if (!(x.name.length > 0 && x.name.length <= 255 && !x.name.includes(0))) {
        throw new FormatError("an xattr name is empty, too long or has NUL");
      }
      if (x.value.length > 0xffff) throw new FormatError("an xattr value is longer than 65535 bytes");
    }
    let key = "";
    for (const x of sorted) key += `${x.name.length}:${byteKey(x.name)}${x.value.length}:${byteKey(x.value)}`;
    const known = this.#ids.get(key);
    if (known !== undefined) return known;
    let size = 2 * key.length + 64;
    for (const x of sorted) size += x.name.length + x.value.length + 96;
    this.ensure(size);
    this.#bytes += size;
    const id = this.#sets.length;
    this.#sets.push(sorted);
    this.#ids.set(key, id);
    return id;
  }

  /** The xattrs of set `id`, sorted by name. Do not modify. */
  get(id: number): readonly Xattr[] {
    return this.#sets[id];
  }

  /** For each set, the id of the set of its xattrs whose names `keep` accepts. */
  filtered(keep: (name: Uint8Array) => boolean): Int32Array {
    const count = this.#sets.length;
    const mapped = new Int32Array(count);
    for (let s = 0; s < count; s++) {
      const all = this.#sets[s];
      const kept = all.filter((x) => keep(x.name));
      mapped[s] = kept.length === all.length ? s : this.intern(kept);
    }
    return mapped;
  }
}
