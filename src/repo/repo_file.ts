/**
 * Reading repository files: objects, layer records, manifests and configs,
 * image records, tags and the format file are regular files, and every reader
 * opens them here, never any other way.
 *
 * They are opened with `O_NOFOLLOW`, so a symbolic link put where a file
 * belongs is refused (ELOOP) instead of followed out of the repository, and
 * `O_NONBLOCK`, so a FIFO there cannot hold the reader (and the lock it holds)
 * forever. Reads are positional (`pread`), which a FIFO or socket refuses at
 * once, and a directory refuses with EISDIR. How much is read is bounded by the
 * caller: by the size the record states (objects), or, for files whose size no
 * record states, by the file's own size checked against a limit after an
 * `fstat` that also requires a regular file ({@link RepoFile.regularSize},
 * {@link readRepoFile}). A device node read with a stated size gives at most
 * that many bytes, which then fail their digest.
 *
 * @module
 */
import * as fs from "node:fs";
import { RepositoryError } from "../errors.ts";
import { osErrorAt } from "../util/os_error.ts";

const FLAGS = fs.constants.O_RDONLY | (fs.constants.O_NOFOLLOW ?? 0) | (fs.constants.O_NONBLOCK ?? 0);

/** What a file system entry is, in words, when it is not a regular file ("a symbolic link", ...). */
function kindOf(
  info: Pick<Deno.FileInfo, "isFile" | "isDirectory" | "isSymlink"> & Partial<Deno.FileInfo>,
): string | undefined {
  if (info.isFile) return undefined;
  if (info.isDirectory) return "a directory";
  if (info.isSymlink) return "a symbolic link";
  if (info.isFifo) return "a FIFO";
  if (info.isCharDevice) return "a character device";
  if (info.isBlockDevice) return "a block device";
  if (info.isSocket) return "a socket";
  return "not a regular file";
}

/**
 * What is at `path` when it is not a regular file ("a directory", ...), without
 * following a symbolic link; undefined for a regular file or nothing at all.
 */
function notRegularSync(path: string): string | undefined {
  try {
    return kindOf(Deno.lstatSync(path));
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    throw e;
  }
}

/**
 * What the directory entry `entry`, at `path`, is when it is not a regular file
 * ("a directory", "a FIFO", ...); undefined for a regular file (or one gone meanwhile).
 */
export function entryKind(path: string, entry: Deno.DirEntry): string | undefined {
  if (entry.isFile) return undefined;
  if (entry.isDirectory) return "a directory";
  if (entry.isSymlink) return "a symbolic link";
  return notRegularSync(path);
}

/** True when a regular file is at `path` (a symbolic link, even to one, is not). */
export function isRegularFileSync(path: string): boolean {
  try {
    return Deno.lstatSync(path).isFile;
  } catch {
    return false;
  }
}

/** The asynchronous form of {@link isRegularFileSync}. */
export async function isRegularFile(path: string): Promise<boolean> {
  try {
    return (await Deno.lstat(path)).isFile;
  } catch {
    return false;
  }
}

/** A repository file found not as it must be: its `path`, and the `problem` in words. */
export type DamagedFileError = RepositoryError & { path: string; problem: string };

/**
 * The error for the repository file at `path` that is not as it must be
 * (`problem`: "is a symbolic link, not a regular file"): the message says to
 * run fsck; fsck reports the `problem` itself. (Plain fields, so the error
 * crosses a worker boundary whole.)
 */
export function damagedFile(path: string, problem: string): DamagedFileError {
  return Object.assign(new RepositoryError(`${path} ${problem}; run fsck`), { path, problem });
}

/** The `problem` of an error made by {@link damagedFile}, if it is one. */
export function problemOf(e: unknown): string | undefined {
  const problem = e instanceof RepositoryError ? (e as Partial<DamagedFileError>).problem : undefined;
  return typeof problem === "string" ? problem : undefined;
}

/** The problem of a path that holds `kind` ("a directory", ...) where a regular file belongs. */
export function notRegularProblem(kind: string): string {
  return kind === "not a regular file" ? "is not a regular file" : `is ${kind}, not a regular file`;
}

function notRegularError(path: string, kind: string): DamagedFileError {
  return damagedFile(path, notRegularProblem(kind));
}

/** An open failure as what a reader can report: missing (Deno's NotFound), not a regular file, or an OS condition. */
function openError(e: unknown, path: string): unknown {
  const code = (e as { code?: unknown }).code;
  if (code === "ENOENT") return new Deno.errors.NotFound(`no such file: ${path}`);
  if (code === "ELOOP") return notRegularError(path, "a symbolic link");
  if (code === "ENXIO") return notRegularError(path, notRegularSync(path) ?? "not a regular file");
  return osErrorAt(e, path, `cannot open ${path}`);
}

/**
 * A repository file open for reading (see the module documentation). Reads go
 * from a position of its own, which {@link read} advances, or from the position
 * given ({@link preadSync}).
 */
export class RepoFile {
  #fd: number;
  #position = 0;
  #closed = false;

  private constructor(readonly path: string, fd: number) {
    this.#fd = fd;
  }

  /**
   * Opens the file at `path`: Deno's NotFound when nothing is there, a
   * {@link RepositoryError} naming the path for a symbolic link (or socket).
   */
  static openSync(path: string): RepoFile {
    try {
      return new RepoFile(path, fs.openSync(path, FLAGS));
    } catch (e) {
      throw openError(e, path);
    }
  }

  /** The asynchronous form of {@link openSync}. */
  static open(path: string): Promise<RepoFile> {
    return new Promise((resolve, reject) => {
      fs.open(path, FLAGS, (e, fd) => e ? reject(openError(e, path)) : resolve(new RepoFile(path, fd)));
    });
  }

  /**
   * The file's size, by `fstat`; a {@link RepositoryError} naming the path
   * unless it is a regular file. Readers call it where no record states the
   * size, or where the file itself (not only its bytes) is used.
   */
  regularSize(): number {
    const st = this.#stat();
    const kind = kindOf({
      isFile: st.isFile(),
      isDirectory: st.isDirectory(),
      isSymlink: st.isSymbolicLink(),
      isFifo: st.isFIFO(),
      isCharDevice: st.isCharacterDevice(),
      isBlockDevice: st.isBlockDevice(),
      isSocket: st.isSocket(),
    });
    if (kind !== undefined) throw notRegularError(this.path, kind);
    return st.size;
  }

  /** Moves the position {@link read} reads from. */
  seek(position: number): void {
    this.#position = position;
  }

  /** Reads into `into` from the position, advancing it; null at the end of the file. */
  read(into: Uint8Array): Promise<number | null> {
    return new Promise((resolve, reject) => {
      fs.read(this.#fd, into, 0, into.length, this.#position, (e, n) => {
        if (e) return reject(this.#readError(e));
        this.#position += n;
        resolve(n === 0 && into.length > 0 ? null : n);
      });
    });
  }

  /** The synchronous form of {@link read}. */
  readSync(into: Uint8Array): number | null {
    const n = this.preadSync(into, 0, into.length, this.#position);
    this.#position += n;
    return n === 0 && into.length > 0 ? null : n;
  }

  /** Reads up to `length` bytes at `position` into `into` at `offset`; returns how many (0 at the end). */
  preadSync(into: Uint8Array, offset: number, length: number, position: number): number {
    try {
      return fs.readSync(this.#fd, into, offset, length, position);
    } catch (e) {
      throw this.#readError(e);
    }
  }

  /** Closes the file (once; later calls do nothing). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    fs.closeSync(this.#fd);
  }

  #stat(): fs.Stats {
    try {
      return fs.fstatSync(this.#fd);
    } catch (e) {
      throw osErrorAt(e, this.path, `cannot read ${this.path}`);
    }
  }

  /** A read failure: a FIFO, socket or directory is named for what it is; an OS condition names the path. */
  #readError(e: unknown): unknown {
    try {
      this.regularSize();
    } catch (notRegular) {
      return notRegular;
    }
    return osErrorAt(e, this.path, `cannot read ${this.path}`);
  }
}

/**
 * The whole of the regular file at `path`, refused (naming it) when it is over
 * `max` bytes: for the repository's small files, whose size no record states
 * (image records, tags, manifests and configs, the format file).
 */
export async function readRepoFile(path: string, max: number): Promise<Uint8Array> {
  const file = await RepoFile.open(path);
  try {
    const size = file.regularSize();
    if (size > max) throw damagedFile(path, `is ${size} bytes, over the limit of ${max} for this file`);
    const bytes = new Uint8Array(size);
    let n = 0;
    while (n < size) {
      const r = await file.read(bytes.subarray(n));
      if (r === null) break;
      n += r;
    }
    return bytes.subarray(0, n);
  } finally {
    file.close();
  }
}
