/**
 * The source side of a tar-diff rebuild: the source image's merged filesystem as
 * a plain, structured-clonable index (path → content object and size), built once
 * in the main thread and sent to every layer worker, and a {@link TarDiffSource}
 * that reads those objects from the repository with positional reads.
 *
 * @module
 */
import fs from "node:fs";
import { RepositoryError } from "../errors.ts";
import { objectName, type ObjectStore } from "../repo/objects.ts";
import type { LookupFailure, Rootfs } from "../oci/rootfs.ts";
import type { SourceFile, TarDiffSource } from "../tardiff/apply.ts";
import { Yielder } from "../util/yielder.ts";

/** A regular file of the source: its content object (absent when empty) and size. */
export interface SourceEntry {
  object?: string;
  size: number;
}

/**
 * Every path of a merged filesystem: regular files (hardlinks resolved) by their
 * content, anything else as "not a regular file". Paths not in it are missing.
 * A Map of plain values, so it crosses a Worker boundary by structured clone.
 */
export type SourceIndex = Map<string, SourceEntry | "not a regular file">;

/** Builds the index of a merged filesystem. */
export async function sourceIndex(rootfs: Rootfs): Promise<SourceIndex> {
  const index: SourceIndex = new Map();
  const yielder = new Yielder({ every: 256 }); // millions of paths, no I/O: let signals in
  for (const [path] of rootfs.walk()) {
    await yielder.yieldIfDue();
    const file = rootfs.regularFile(path);
    index.set(path, typeof file === "string" ? "not a regular file" : file);
  }
  return index;
}

const EMPTY_FILE: SourceFile = {
  size: 0,
  read(_position: number, _into: Uint8Array, _offset: number, length: number): void {
    if (length > 0) throw new RangeError("read past the end of an empty file");
  },
  close(): void {},
};

/** Default for the bytes of source files that all the rebuilds of one pull may hold in memory at once. */
export const SOURCE_MEMORY = 128 << 20;
/** Out-of-order reads of one file after which it is read whole, when the memory budget allows. */
const RANDOM_READS = 64;

/**
 * A budget of bytes shared by every rebuild of a pull, in whichever worker it
 * runs: a SharedArrayBuffer counter (KiB), so that jobs × files never add up to
 * more than the budget. Created by the caller, sent with each task.
 */
export class MemoryBudget {
  readonly #cell: Int32Array;

  constructor(readonly buffer: SharedArrayBuffer) {
    this.#cell = new Int32Array(buffer);
  }

  /** A fresh budget of `bytes`. */
  static create(bytes: number = SOURCE_MEMORY): MemoryBudget {
    const budget = new MemoryBudget(new SharedArrayBuffer(4));
    Atomics.store(budget.#cell, 0, Math.floor(bytes / 1024));
    return budget;
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

  /** Gives back what {@link reserve} took. */
  release(bytes: number): void {
    Atomics.add(this.#cell, 0, Math.ceil(bytes / 1024));
  }
}

/**
 * One buffer, shared by the files a rebuild opens in turn, that holds the whole
 * content of the file being read at random. Grows as the budget allows and is
 * kept (with the name of the object it holds) for the next Open.
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
    const had = this.bytes.length;
    this.bytes = new Uint8Array(0); // let the old buffer go before the new one is made
    this.hex = "";
    try {
      this.bytes = new Uint8Array(size);
    } catch (e) {
      this.budget.release(size - had);
      this.budget.release(had);
      throw e;
    }
    return true;
  }

  /** Frees the buffer and returns its bytes to the budget. */
  release(): void {
    this.budget.release(this.bytes.length);
    this.bytes = new Uint8Array(0);
    this.hex = "";
  }
}

/**
 * A content object opened for positional reads. tar-diffs of binaries interleave
 * tens of thousands of tiny Seek/AddData pairs that jump all over a file (the
 * real-world deno delta: 80,000 reads, two thirds of them over a megabyte from the
 * one before). Reads start as `pread`s (node:fs readSync with a position: one
 * system call, where Deno's FsFile needs a seek and a read), and a file read out
 * of order more than {@link RANDOM_READS} times is then read whole into the shared
 * {@link WholeFile} buffer (one pass) when the memory budget allows: every read
 * after that is a memory copy. Sequential readers (Copy of whole files) never take
 * that path.
 */
class ObjectFile implements SourceFile {
  #fd: number;
  #next = 0;
  #random = 0;
  #whole: Uint8Array | undefined;

  constructor(readonly hex: string, path: string, readonly size: number, readonly shared: WholeFile) {
    try {
      this.#fd = fs.openSync(path, "r");
    } catch (e) {
      if ((e as { code?: string }).code === "ENOENT") {
        throw new RepositoryError(`${objectName(hex)} is missing from the repository; run fsck`);
      }
      throw e;
    }
    if (shared.hex === hex) this.#whole = shared.bytes;
  }

  read(position: number, into: Uint8Array, offset: number, length: number): void {
    const whole = this.#whole;
    if (whole !== undefined) {
      if (length < 48) {
        for (let i = 0; i < length; i++) into[offset + i] = whole[position + i];
      } else {
        into.set(whole.subarray(position, position + length), offset);
      }
      return;
    }
    if (position !== this.#next && ++this.#random > RANDOM_READS) {
      if (this.shared.grow(this.size)) {
        this.#whole = this.#readWhole();
        return this.read(position, into, offset, length);
      }
      this.#random = -Infinity; // no room: stay with pread for this file
    }
    this.#pread(position, into, offset, length);
    this.#next = position + length;
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
      const n = fs.readSync(this.#fd, into, offset, length, position);
      if (n <= 0) throw new RepositoryError(`${objectName(this.hex)} is shorter than recorded; run fsck`);
      position += n;
      offset += n;
      length -= n;
    }
  }

  get bytes(): Uint8Array | undefined {
    return this.#whole;
  }

  close(): void {
    fs.closeSync(this.#fd);
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
    const entry = this.index.get(path);
    if (entry === undefined) return "missing";
    if (typeof entry === "string") return entry;
    if (entry.object === undefined || entry.size === 0) return EMPTY_FILE;
    return new ObjectFile(entry.object, this.objects.path(entry.object), entry.size, this.#whole);
  }
}
