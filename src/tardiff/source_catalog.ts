/**
 * The tar-diff encoder's source side: the regular files of the old image's
 * merged root filesystem that a delta may read (Open), indexed by content, path
 * and name, and the rules for picking the best one for a changed target file.
 *
 * @module
 */
import type { Rootfs } from "../oci/rootfs.ts";
import { baseName } from "../tar/path.ts";
import { MAX_OPEN_NAME } from "./format.ts";

/** A file of the source filesystem. */
export interface SourceFile {
  /** Path in the source root (relative, no leading `/`): what Open names. */
  path: string;
  /** Content size. */
  size: number;
  /** Content object (SHA-256 hex) in the repository. */
  object: string;
}

/** The default `--ignore-source-prefix`: bootc images keep every file twice, once under it. */
export const DEFAULT_IGNORED_PREFIXES: readonly string[] = ["sysroot/ostree/"];

const utf8 = new TextEncoder();

/** Files whose content is already compressed: a binary diff of them is wasted work. */
export function isDeltaCandidate(path: string): boolean {
  const name = baseName(path);
  return !/\.(xz|bz2|zst|lz4|lzma|7z)$/i.test(name);
}

/**
 * Whether two sizes are close enough to diff: small files always are; larger ones
 * within a factor of ten (a binary replaced by a shell wrapper is not a source).
 */
export function sizeSimilar(a: number, b: number): boolean {
  if (a < 64 * 1024 && b < 64 * 1024) return true;
  return a < 10 * b && b < 10 * a;
}

/** The part of a name before its first dot (`libfoo.so.1.2` → `libfoo.`), for renamed versions. */
function stem(name: string): string {
  const dot = name.indexOf(".");
  return dot < 0 ? name : name.slice(0, dot + 1);
}

/** Normalises an ignore prefix as given on the command line (no leading `/`). */
export function normalizePrefix(prefix: string): string {
  return prefix.replace(/^\/+/, "");
}

/** The usable source files of a filesystem, indexed for lookups. */
export class SourceCatalog {
  readonly byObject = new Map<string, SourceFile>();
  readonly byPath = new Map<string, SourceFile>();
  readonly byName = new Map<string, SourceFile[]>();
  readonly byStem = new Map<string, SourceFile[]>();
  /** Every file that may be diffed against, by size, for content-based searches. */
  readonly bySize: SourceFile[] = [];
  #sorted = true;

  /**
   * Collects the regular files (hardlinks resolved) of `rootfs` that a reader can
   * open: non-empty, world-readable (readers may run unprivileged against an
   * extracted tree), with a path that fits an Open op and is not under one of
   * `ignoredPrefixes`.
   */
  static fromRootfs(rootfs: Rootfs, ignoredPrefixes: readonly string[]): SourceCatalog {
    const catalog = new SourceCatalog();
    const prefixes = ignoredPrefixes.map(normalizePrefix).filter((p) => p !== "");
    for (const [path, node] of rootfs.walk()) {
      const kind = node.entry.kind;
      if (kind !== "file" && kind !== "hardlink") continue;
      if (node.object === undefined || node.size === 0) continue;
      if (kind === "file" && node.entry.typeflag !== "0" && node.entry.typeflag !== "\0") continue;
      if ((node.entry.mode & 0o004) === 0) continue;
      if (prefixes.some((p) => path.startsWith(p))) continue;
      if (path.split("/").some((part) => part.startsWith("GNUSparseFile."))) continue;
      if (utf8.encode(path).length > MAX_OPEN_NAME) continue;
      catalog.add({ path, size: node.size, object: node.object });
    }
    return catalog;
  }

  /** Adds a file. */
  add(file: SourceFile): void {
    if (isDeltaCandidate(file.path)) {
      this.bySize.push(file);
      this.#sorted = false;
    }
    if (!this.byObject.has(file.object)) this.byObject.set(file.object, file);
    this.byPath.set(file.path, file);
    const name = baseName(file.path);
    push(this.byName, name, file);
    push(this.byStem, stem(name), file);
  }

  /** A source with exactly this content, if any. */
  identical(object: string): SourceFile | undefined {
    return this.byObject.get(object);
  }

  /**
   * The best source to diff a changed file against, by name: the same path;
   * else a file with the same name elsewhere (moved); else one whose name agrees
   * up to the first dot (renamed version). Among several, the closest in size.
   */
  byNameFor(path: string, size: number): SourceFile | undefined {
    if (!isDeltaCandidate(path)) return undefined;
    const same = this.byPath.get(path);
    if (same && isDeltaCandidate(same.path) && sizeSimilar(same.size, size)) return same;
    const name = baseName(path);
    return closest(this.byName.get(name), size) ?? closest(this.byStem.get(stem(name)), size);
  }

  /**
   * Up to `count` files closest in size to `size` (within a factor of two), the
   * candidates for a content-based search.
   */
  nearestInSize(size: number, count: number): SourceFile[] {
    if (!this.#sorted) {
      this.bySize.sort((a, b) => a.size - b.size);
      this.#sorted = true;
    }
    const list = this.bySize;
    let lo = 0;
    let hi = list.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (list[mid].size < size) lo = mid + 1;
      else hi = mid;
    }
    const out: SourceFile[] = [];
    let a = lo - 1;
    let b = lo;
    while (out.length < count) {
      const da = a >= 0 ? size - list[a].size : Infinity;
      const db = b < list.length ? list[b].size - size : Infinity;
      if (da === Infinity && db === Infinity) break;
      const f = da <= db ? list[a--] : list[b++];
      if (f.size * 2 < size || f.size > size * 2) break;
      out.push(f);
    }
    return out;
  }
}

/** Bytes of a file a content sketch looks at (its start). */
export const SKETCH_BYTES = 1 << 20;

/** Gear table for the content-defined sampling of sketches (fixed, so sketches compare). */
const GEAR = (() => {
  const t = new Int32Array(256);
  let x = 0x9e3779b9;
  for (let i = 0; i < 256; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    t[i] = x;
  }
  return t;
})();

/**
 * A content sketch: the rolling (gear) hashes at content-defined sample points
 * (about one position in 64) of the first {@link SKETCH_BYTES}. Shared content
 * gives shared samples even when shifted, so the overlap of two sketches
 * estimates how much of one file the other holds.
 */
export function sketch(bytes: Uint8Array): Set<number> {
  const out = new Set<number>();
  const n = Math.min(bytes.length, SKETCH_BYTES);
  let h = 0;
  for (let i = 0; i < n; i++) {
    h = ((h << 1) + GEAR[bytes[i]]) | 0;
    if (i >= 32 && (h & 0xfc000000) === 0) out.add(h);
  }
  return out;
}

/** The fraction of `target`'s samples that `source` has too (0 when `target` has none). */
export function overlap(target: Set<number>, source: Set<number>): number {
  if (target.size === 0) return 0;
  let shared = 0;
  for (const h of target) if (source.has(h)) shared++;
  return shared / target.size;
}

function push(map: Map<string, SourceFile[]>, key: string, file: SourceFile): void {
  const list = map.get(key);
  if (list) list.push(file);
  else map.set(key, [file]);
}

function closest(list: SourceFile[] | undefined, size: number): SourceFile | undefined {
  let best: SourceFile | undefined;
  for (const f of list ?? []) {
    if (!isDeltaCandidate(f.path) || !sizeSimilar(f.size, size)) continue;
    if (!best || Math.abs(f.size - size) < Math.abs(best.size - size)) best = f;
  }
  return best;
}
