/**
 * Small file-system helpers shared by the repository and the layout writer.
 *
 * @module
 */

/** Information about `path` without following a final symlink, or undefined when nothing is there. */
export async function lstatOrUndefined(path: string): Promise<Deno.FileInfo | undefined> {
  try {
    return await Deno.lstat(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    throw e;
  }
}

/** True when something (anything, even a dangling symlink) is at `path`. */
export async function exists(path: string): Promise<boolean> {
  return (await lstatOrUndefined(path)) !== undefined;
}

/** What {@link readFull} reads from: a Deno file, or anything that reads the same way. */
export interface Reader {
  /** Reads into `into`; the number of bytes read, or null at the end. */
  read(into: Uint8Array): Promise<number | null>;
}

/** What {@link readFullSync} reads from. */
export interface SyncReader {
  /** Reads into `into`; the number of bytes read, or null at the end. */
  readSync(into: Uint8Array): number | null;
}

/** Writes all of `bytes` to a file (a single write may take only part). */
export async function writeAll(file: Deno.FsFile, bytes: Uint8Array): Promise<void> {
  let off = 0;
  while (off < bytes.length) off += await file.write(bytes.subarray(off));
}

/**
 * Reads from the file's position until `into` is full or the file ends; returns
 * how many bytes were read (less than `into.length` only at the end of the file).
 */
export async function readFull(file: Reader, into: Uint8Array): Promise<number> {
  let n = 0;
  while (n < into.length) {
    const r = await file.read(into.subarray(n));
    if (r === null) break;
    n += r;
  }
  return n;
}

/** The synchronous form of {@link readFull}. */
export function readFullSync(file: SyncReader, into: Uint8Array): number {
  let n = 0;
  while (n < into.length) {
    const r = file.readSync(into.subarray(n));
    if (r === null) break;
    n += r;
  }
  return n;
}

/** Bytes of a file or directory tree (0 for what cannot be read). */
export async function treeSize(path: string): Promise<number> {
  try {
    const st = await Deno.lstat(path);
    if (!st.isDirectory) return st.size;
    let total = 0;
    for await (const e of Deno.readDir(path)) total += await treeSize(`${path}/${e.name}`);
    return total;
  } catch {
    return 0;
  }
}
