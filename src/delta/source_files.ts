/**
 * The source side of a tar-diff rebuild: the source image's merged filesystem as
 * a plain, structured-clonable index (path → content object and size), built once
 * in the main thread and sent to every layer worker, and a {@link TarDiffSource}
 * that reads those objects from the repository with positional reads.
 *
 * @module
 */
import { LimitError, RepositoryError } from "../errors.ts";
import { formatSize } from "../repo/layer_writer.ts";
import { objectName, type ObjectStore } from "../repo/objects.ts";
import { RepoFile } from "../repo/repo_file.ts";
import type { LookupFailure, Rootfs } from "../oci/rootfs.ts";
import type { SourceFile, TarDiffSource } from "../tardiff/apply.ts";
import { copyInto } from "../tardiff/byte_runs.ts";
import { Yielder } from "../util/yielder.ts";

/** A regular file of the source: its content object (absent when empty) and size. */
export interface SourceEntry {
  object?: string;
  size: number;
}

/** A symbolic link of the source: its target, as the link says it. */
export interface SourceLink {
  link: string;
}

/**
 * Every path of a merged filesystem: regular files (hardlinks resolved) by their
 * content, symbolic links by their target, anything else as "not a regular
 * file". Paths not in it are missing. A Map of plain values, so it crosses a
 * Worker boundary by structured clone.
 */
export type SourceIndex = Map<string, SourceEntry | SourceLink | "not a regular file">;

/** Builds the index of a merged filesystem. */
export async function sourceIndex(rootfs: Rootfs): Promise<SourceIndex> {
  const index: SourceIndex = new Map();
  const yielder = new Yielder({ every: 256 }); // millions of paths, no I/O: let signals in
  for (const [path, node] of rootfs.walk()) {
    await yielder.yieldIfDue();
    const inode = node.inode ?? node; // a hardlink to a symlink is that symlink, as on disk
    if (inode.entry.kind === "symlink") {
      index.set(path, { link: inode.entry.linkname });
      continue;
    }
    const file = rootfs.regularFile(path);
    index.set(path, typeof file === "string" ? "not a regular file" : file);
  }
  return index;
}

/** Most symbolic links followed resolving one Open path (as the rootfs model allows). */
const MAX_LINKS = 255;

/**
 * Resolves `path` inside the source's root as the kernel would with that root
 * as `/` (as Go's tar-patch opens files): symbolic links followed in every
 * component, an absolute target starting again from the root and `..` stopping
 * there, so nothing outside the source is ever reached. Returns the entry
 * reached, or why there is none.
 */
export function resolveSource(index: SourceIndex, path: string): SourceEntry | LookupFailure {
  const todo = path.split("/").reverse();
  const at: string[] = [];
  let links = 0;
  let entry: SourceEntry | SourceLink | "not a regular file" | undefined;
  while (todo.length > 0) {
    const part = todo.pop()!;
    if (part === "" || part === ".") continue;
    if (part === "..") {
      at.pop();
      continue;
    }
    at.push(part);
    entry = index.get(at.join("/"));
    if (entry === undefined) return links > 0 ? "dangling symlink" : "missing";
    if (typeof entry === "object" && "link" in entry) {
      if (++links > MAX_LINKS) return "symlink loop";
      at.pop();
      if (entry.link.startsWith("/")) at.length = 0;
      todo.push(...entry.link.split("/").reverse());
      continue;
    }
    if (todo.some((p) => p !== "" && p !== ".") && entry !== "not a regular file") {
      return links > 0 ? "dangling symlink" : "missing"; // a file where a directory should be
    }
  }
  if (entry === undefined || at.length === 0 || typeof entry === "string") return "not a regular file";
  return entry as SourceEntry;
}

const EMPTY_FILE: SourceFile = {
  size: 0,
  read(_position: number, _into: Uint8Array, _offset: number, length: number): void {
    if (length > 0) throw new RangeError("read past the end of an empty file");
  },
  close(): void {},
};

/**
 * Default for the bytes of source files that all the rebuilds of one pull may
 * hold in memory at once: 512 MiB, the largest dictionary (source file) a
 * version-2 ZstdDict op may need, so that every delta the reference tools accept
 * applies here. It is a ceiling, not an allocation: only dictionaries take from
 * it, so a version-1 delta holds none of it.
 */
export const SOURCE_MEMORY = 512 << 20;
/** How long a waiting reservation sleeps between looks at the budget, at most (ms). */
const WAIT_SLICE = 50;

/**
 * A budget of bytes shared by every rebuild of a pull, in whichever worker it
 * runs: SharedArrayBuffer counters (KiB left, the total, and the `--memory-limit`
 * it was derived from, 0 for none, for errors to name), so that jobs ×
 * files never add up to more than the budget. Created by the caller, sent with
 * each task.
 */
export class MemoryBudget {
  readonly #cell: Int32Array;

  constructor(readonly buffer: SharedArrayBuffer) {
    this.#cell = new Int32Array(buffer);
  }

  /** A fresh budget of `bytes`, left of a memory limit of `limit` bytes when there is one. */
  static create(bytes: number = SOURCE_MEMORY, limit?: number): MemoryBudget {
    const budget = new MemoryBudget(new SharedArrayBuffer(12));
    const kib = Math.floor(bytes / 1024);
    Atomics.store(budget.#cell, 0, kib);
    Atomics.store(budget.#cell, 1, kib);
    Atomics.store(budget.#cell, 2, Math.min(2 ** 31 - 1, Math.ceil((limit ?? 0) / 1024)));
    return budget;
  }

  /** Whether the budget was derived from a `--memory-limit`. */
  get limited(): boolean {
    return Atomics.load(this.#cell, 2) > 0;
  }

  /** The whole budget, in bytes (what is left when nothing is held). */
  get total(): number {
    return Atomics.load(this.#cell, 1) * 1024;
  }

  /** Takes `bytes` from the budget; false (taking nothing) when there is not that much left. */
  reserve(bytes: number): boolean {
    const kib = Math.ceil(bytes / 1024);
    for (;;) {
      const left = Atomics.load(this.#cell, 0);
      if (left < kib) return false;
      if (Atomics.compareExchange(this.#cell, 0, left, left - kib) === left) return true;
    }
  }

  /**
   * Takes `bytes` from the budget, waiting for other rebuilds to give some back
   * when there is not that much left. The caller must hold nothing of the
   * budget while it waits (so that two waiting jobs cannot block each other).
   * Throws a LimitError, naming `what`, when `bytes` is more than the whole budget.
   */
  async reserveWaiting(bytes: number, what: string): Promise<void> {
    if (Math.ceil(bytes / 1024) > Atomics.load(this.#cell, 1)) {
      const limit = Atomics.load(this.#cell, 2);
      throw new LimitError(
        `${what} needs ${bytes} bytes in memory, more than the ${this.total}-byte budget for source files` +
          (limit > 0 ? ` that --memory-limit ${formatSize(limit * 1024)} leaves; raise the limit or drop it` : ""),
      );
    }
    while (!this.reserve(bytes)) {
      // Woken by a release, or after a slice at most (Deno's waitAsync timeout keeps no process alive).
      const waited = Atomics.waitAsync(this.#cell, 0, Atomics.load(this.#cell, 0));
      if (!waited.async) continue;
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([waited.value, new Promise((resolve) => (timer = setTimeout(resolve, WAIT_SLICE)))]);
      clearTimeout(timer);
    }
  }

  /** Gives back what {@link reserve} or {@link reserveWaiting} took, and wakes waiting jobs. */
  release(bytes: number): void {
    Atomics.add(this.#cell, 0, Math.ceil(bytes / 1024));
    Atomics.notify(this.#cell, 0);
  }
}

/**
 * One buffer, shared by the files a rebuild opens in turn, that holds the whole
 * content of the file used as a ZstdDict dictionary. Grows as
 * the budget allows and is kept (with the name of the object it holds) for the
 * next Open.
 */
class WholeFile {
  bytes = new Uint8Array(0);
  /** The object held, or "" when none. */
  hex = "";

  constructor(readonly budget: MemoryBudget) {}

  /** Makes room for `size` bytes, within the budget; false when the budget has no room. */
  grow(size: number): boolean {
    if (this.bytes.length >= size) return true;
    if (!this.budget.reserve(size - this.bytes.length)) return false;
    this.#allocate(size, this.bytes.length);
    return true;
  }

  /**
   * Makes room for `size` bytes, waiting for the budget when it has no room:
   * what this buffer holds is given back first, so a waiting rebuild holds nothing.
   */
  async growWaiting(size: number, what: string): Promise<void> {
    if (this.bytes.length >= size || this.grow(size)) return;
    this.release();
    await this.budget.reserveWaiting(size, what);
    this.#allocate(size, 0);
  }

  /** Replaces the buffer by one of `size` bytes, of which `size - had` were just reserved. */
  #allocate(size: number, had: number): void {
    this.bytes = new Uint8Array(0); // let the old buffer go before the new one is made
    this.hex = "";
    try {
      this.bytes = new Uint8Array(size);
    } catch (e) {
      this.budget.release(size - had);
      this.budget.release(had);
      throw e;
    }
  }

  /** Frees the buffer and returns its bytes to the budget. */
  release(): void {
    this.budget.release(this.bytes.length);
    this.bytes = new Uint8Array(0);
    this.hex = "";
  }
}

/**
 * A content object opened for positional reads. Every read is a `pread` (node:fs
 * readSync with a position: one system call, where Deno's FsFile needs a seek and
 * a read) served from the page cache. The interpreter gathers the tiny Seek/AddData
 * reads of a tar-diff (a million of them between distant releases, jumping all
 * over the file) and asks for them in runs (tardiff/read_batch.ts), so reads here
 * are few and large; only a ZstdDict dictionary ({@link whole}) is held in memory,
 * from the budget.
 */
class ObjectFile implements SourceFile {
  #file: RepoFile;
  #whole: Uint8Array | undefined;

  constructor(
    readonly hex: string,
    path: string,
    readonly size: number,
    readonly shared: WholeFile,
    readonly name: string,
  ) {
    try {
      this.#file = RepoFile.openSync(path);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) {
        throw new RepositoryError(`${objectName(hex)} is missing from the repository; run fsck`);
      }
      throw e;
    }
    if (shared.hex === hex) this.#whole = shared.bytes;
  }

  read(position: number, into: Uint8Array, offset: number, length: number): void {
    const whole = this.#whole;
    if (whole === undefined) return this.#pread(position, into, offset, length);
    copyInto(into, offset, whole, position, length);
  }

  #readWhole(): Uint8Array {
    const shared = this.shared;
    shared.hex = "";
    this.#pread(0, shared.bytes, 0, this.size);
    shared.hex = this.hex;
    return shared.bytes;
  }

  #pread(position: number, into: Uint8Array, offset: number, length: number): void {
    while (length > 0) {
      const n = this.#file.preadSync(into, offset, length, position);
      if (n <= 0) throw new RepositoryError(`${objectName(this.hex)} is shorter than recorded; run fsck`);
      position += n;
      offset += n;
      length -= n;
    }
  }

  get bytes(): Uint8Array | undefined {
    return this.#whole;
  }

  async whole(): Promise<Uint8Array> {
    if (this.#whole !== undefined) return this.#whole.subarray(0, this.size);
    await this.shared.growWaiting(this.size, `source file ${JSON.stringify(this.name)}`);
    return (this.#whole = this.#readWhole()).subarray(0, this.size);
  }

  close(): void {
    this.#file.close();
  }
}

/**
 * A {@link TarDiffSource} over a {@link SourceIndex} and the repository's objects.
 * Call {@link release} when done, to give its memory back to the budget.
 */
export class ObjectSource implements TarDiffSource {
  #whole: WholeFile;

  constructor(
    readonly objects: ObjectStore,
    readonly index: SourceIndex,
    budget: MemoryBudget = MemoryBudget.create(),
  ) {
    this.#whole = new WholeFile(budget);
  }

  /** Frees the in-memory copy of a source file, if any. */
  release(): void {
    this.#whole.release();
  }

  open(path: string): SourceFile | LookupFailure {
    const found = this.index.get(path);
    if (typeof found === "string") return found;
    // A symbolic link, or a path through one: followed inside the source's root.
    const entry = found === undefined || "link" in found ? resolveSource(this.index, path) : found;
    if (typeof entry === "string") return entry;
    if (entry.object === undefined || entry.size === 0) return EMPTY_FILE;
    return new ObjectFile(entry.object, this.objects.path(entry.object), entry.size, this.#whole, path);
  }
}
