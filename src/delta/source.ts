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
import type { ObjectStore } from "../repo/objects.ts";
import type { LookupFailure, Rootfs } from "../repo/rootfs.ts";
import type { SourceFile, TarDiffSource } from "../tardiff/apply.ts";

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
export function sourceIndex(rootfs: Rootfs): SourceIndex {
  const index: SourceIndex = new Map();
  for (const [path] of rootfs.walk()) {
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

/** Most bytes of one source file held in memory ({@link WholeFile}). */
export const WHOLE_FILE_LIMIT = 128 << 20;
/** Out-of-order reads of one file after which it is read whole, when it fits {@link WHOLE_FILE_LIMIT}. */
const RANDOM_READS = 64;

/**
 * One buffer, shared by the files a rebuild opens in turn, that holds the whole
 * content of the file being read at random. Grows up to {@link WHOLE_FILE_LIMIT}
 * and is kept (with the name of the object it holds) for the next Open.
 */
class WholeFile {
  bytes = new Uint8Array(0);
  /** The object held, or "" when none. */
  hex = "";
}

/**
 * A content object opened for positional reads. tar-diffs of binaries interleave
 * tens of thousands of tiny Seek/AddData pairs that jump all over a file (the
 * real-world deno delta: 80,000 reads, two thirds of them over a megabyte from the
 * one before). Reads start as `pread`s (node:fs readSync with a position: one
 * system call, where Deno's FsFile needs a seek and a read), and a file read out
 * of order more than {@link RANDOM_READS} times is then read whole into the shared
 * {@link WholeFile} buffer (one pass) when it fits: every read after that is a
 * memory copy. Sequential readers (Copy of whole files) never take that path.
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
        throw new RepositoryError(`object sha256:${hex} is missing from the repository; run fsck`);
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
    if (position !== this.#next && ++this.#random > RANDOM_READS && this.size <= WHOLE_FILE_LIMIT) {
      this.#whole = this.#readWhole();
      return this.read(position, into, offset, length);
    }
    this.#pread(position, into, offset, length);
    this.#next = position + length;
  }

  #readWhole(): Uint8Array {
    const shared = this.shared;
    if (shared.bytes.length < this.size) shared.bytes = new Uint8Array(this.size);
    shared.hex = "";
    this.#pread(0, shared.bytes, 0, this.size);
    shared.hex = this.hex;
    return shared.bytes;
  }

  #pread(position: number, into: Uint8Array, offset: number, length: number): void {
    while (length > 0) {
      const n = fs.readSync(this.#fd, into, offset, length, position);
      if (n <= 0) throw new RepositoryError(`object sha256:${this.hex} is shorter than recorded; run fsck`);
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

/** A {@link TarDiffSource} over a {@link SourceIndex} and the repository's objects. */
export class ObjectSource implements TarDiffSource {
  #whole = new WholeFile();

  constructor(readonly objects: ObjectStore, readonly index: SourceIndex) {}

  open(path: string): SourceFile | LookupFailure {
    const entry = this.index.get(path);
    if (entry === undefined) return "missing";
    if (typeof entry === "string") return entry;
    if (entry.object === undefined || entry.size === 0) return EMPTY_FILE;
    return new ObjectFile(entry.object, this.objects.path(entry.object), entry.size, this.#whole);
  }
}
