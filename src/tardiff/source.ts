/**
 * The source a tar-diff applies against: its files, opened by path and read at
 * positions, and what is said when a path names no regular file.
 *
 * @module
 */
import type { LookupFailure } from "../oci/rootfs.ts";

/** A regular file of the source, read at positions. */
export interface SourceFile {
  /** Its size in bytes. */
  readonly size: number;
  /**
   * Fills `into[offset .. offset + length)` with the file's bytes from `position`
   * (the caller keeps the range within `size`).
   */
  read(position: number, into: Uint8Array, offset: number, length: number): void;
  /** Releases the file. */
  close(): void;
  /**
   * The whole content, when the source holds it in memory (it may start doing so
   * part way through); lets the interpreter add and copy without a read call.
   */
  readonly bytes?: Uint8Array;
  /**
   * The whole content in memory, for a ZstdDict op's dictionary: a source that
   * counts its memory may wait here until there is room (and throws when there
   * can never be). Kept until the file is closed. Without it, the interpreter
   * reads the file into a buffer of its own.
   */
  whole?(): Promise<Uint8Array>;
}

/**
 * Where Open finds its files. Paths are cleaned (relative, no `.`/`..`, never
 * empty); the answer is the file, or why there is none.
 */
export interface TarDiffSource {
  open(path: string): SourceFile | LookupFailure;
}

/** The whole content of `file`: from the source when it can give it, else read into a new buffer. */
export async function wholeFile(file: SourceFile): Promise<Uint8Array> {
  if (file.whole) return await file.whole();
  if (file.bytes) return file.bytes;
  const bytes = new Uint8Array(file.size);
  file.read(0, bytes, 0, file.size);
  return bytes;
}

/** What is said when Open's path (`shown`, quoted) finds no regular file. */
export function lookupMessage(failure: LookupFailure, shown: string): string {
  switch (failure) {
    case "missing":
      return `${shown} is not in the source image (missing, or deleted by a whiteout)`;
    case "not a regular file":
      return `${shown} is not a regular file in the source image`;
    case "dangling symlink":
      return `${shown} is a symbolic link that leads to nothing in the source image (dangling)`;
    case "symlink loop":
      return `${shown} is a symbolic link loop in the source image (too many levels of links)`;
  }
}
