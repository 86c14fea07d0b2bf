/**
 * Copying an object out of the store, verified: its bytes are read, hashed
 * and written in one pass, and the copy counts only once they hashed to the
 * object's name (its fs-verity digest) and had its recorded size.
 *
 * @module
 */
import { DigestMismatchError, RepositoryError, SizeMismatchError } from "../errors.ts";
import { FsVerityHasher, fsverityHex } from "../composefs/fsverity.ts";
import { readFullSync, writeAll } from "../util/fs.ts";
import { ellipsize } from "../util/text.ts";
import { objectName } from "./objects.ts";
import { RepoFile } from "./repo_file.ts";

/** Bytes read, hashed and written at a time. */
export const COPY_CHUNK = 1 << 20;

/** One object to copy (or, without `target`, only to check). */
export interface ObjectCopy {
  /** The object's path in the store. */
  object: string;
  /** Its fs-verity digest, hex: its name. */
  hex: string;
  /** Its size, as recorded in the layer. */
  size: number;
  /** The image path it is the content of, to name in errors. */
  path: string;
  /**
   * The file to create; none to check the object only, before hard-linking it
   * (the object itself must then be a regular file, not only hold the right bytes).
   */
  target?: string;
}

/**
 * The two buffers of {@link COPY_CHUNK} bytes a copy reads into, reused from
 * one copy to the next. The second is made on first use: small objects need
 * only one.
 */
export class CopyBuffers {
  readonly first = new Uint8Array(COPY_CHUNK);
  #second: Uint8Array | undefined;

  /** The buffer the next chunk of a big object is read into while the first is written. */
  get second(): Uint8Array {
    return this.#second ??= new Uint8Array(COPY_CHUNK);
  }
}

/**
 * Copies (or checks) one object; throws a {@link RepositoryError} when it is
 * missing and a digest or size mismatch naming the image path when it is
 * damaged. A small object is checked before anything is written; a big one is
 * streamed, so its target exists (with wrong bytes) when the mismatch shows:
 * the caller removes it.
 */
export async function copyObject(copy: ObjectCopy, buffers: CopyBuffers): Promise<void> {
  if (copy.size < COPY_CHUNK) {
    const bytes = readSmall(copy, buffers.first);
    if (copy.target !== undefined) await Deno.writeFile(copy.target, bytes, { createNew: true, mode: 0o600 });
    return;
  }
  const source = await openObject(copy);
  try {
    if (copy.target === undefined) {
      source.regularSize();
      return await hashStream(copy, buffers, source);
    }
    const out = await Deno.open(copy.target, { write: true, createNew: true, mode: 0o600 });
    try {
      await hashStream(copy, buffers, source, (chunk) => writeAll(out, chunk));
    } finally {
      out.close();
    }
  } finally {
    source.close();
  }
}

/**
 * Reads a small object (shorter than `buffer`) whole into `buffer` and checks
 * it; returns the bytes, a view of `buffer`. The reads are synchronous on
 * purpose: from the page cache they are quicker than a round trip through the
 * thread pool each, while the costly part of a small copy, creating the file,
 * stays asynchronous (measured on the bench corpus: as fast as the kernel's
 * copy of the same files).
 */
function readSmall(copy: ObjectCopy, buffer: Uint8Array): Uint8Array {
  let file: RepoFile;
  try {
    file = RepoFile.openSync(copy.object);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) throw missingObject(copy.hex);
    throw e;
  }
  let n: number;
  try {
    if (copy.target === undefined) file.regularSize();
    n = readFullSync(file, buffer);
    if (n !== copy.size) {
      throw new SizeMismatchError(damaged(copy.path), copy.size, n < buffer.length ? n : file.regularSize());
    }
  } finally {
    file.close();
  }
  const bytes = buffer.subarray(0, n);
  checkDigest(fsverityHex(bytes), copy);
  return bytes;
}

async function openObject(copy: ObjectCopy): Promise<RepoFile> {
  try {
    return await RepoFile.open(copy.object);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) throw missingObject(copy.hex);
    throw e;
  }
}

/**
 * Reads `source` to its end, hashing every chunk and passing it to `sink`;
 * throws unless the bytes are the object's. The two buffers take turns: while
 * one chunk is hashed and written, the next is read.
 */
async function hashStream(
  copy: ObjectCopy,
  buffers: CopyBuffers,
  source: RepoFile,
  sink?: (chunk: Uint8Array) => Promise<void>,
): Promise<void> {
  const hasher = new FsVerityHasher();
  let [current, next]: Uint8Array[] = [buffers.first, buffers.second];
  let n = await source.read(current);
  while (n !== null) {
    const chunk = current.subarray(0, n);
    const written = sink?.(chunk);
    const read = source.read(next);
    hasher.update(chunk);
    // Both settle before either buffer is reused (a failed write must not leave a read running).
    const [w, r] = await Promise.allSettled([written, read]);
    if (w.status === "rejected") throw w.reason;
    if (r.status === "rejected") throw r.reason;
    n = r.value;
    [current, next] = [next, current];
    if (hasher.size > copy.size) {
      throw new SizeMismatchError(damaged(copy.path), copy.size, source.regularSize());
    }
  }
  if (hasher.size !== copy.size) throw new SizeMismatchError(damaged(copy.path), copy.size, hasher.size);
  checkDigest(hasher.hexDigest(), copy);
}

/** What a damaged object is called in errors: by the image path that needs it. */
function damaged(path: string): string {
  return `object for /${ellipsize(path, 121)} is damaged (run deltaship fsck)`;
}

/** Throws unless the bytes read hashed to the object's name (`actual`: their fs-verity digest, hex). */
function checkDigest(actual: string, copy: ObjectCopy): void {
  if (actual !== copy.hex) throw new DigestMismatchError(damaged(copy.path), copy.hex, actual);
}

/** The error for an object the store should have and does not. */
export function missingObject(hex: string): RepositoryError {
  return new RepositoryError(`${objectName(hex)} is missing from the repository; run fsck`);
}
