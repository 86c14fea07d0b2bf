/**
 * Names a checkout writes that are not UTF-8. A tar name is kept as its bytes
 * (`tar/header.ts` decodes a byte that is not part of UTF-8 as a lone
 * surrogate), but Deno's file calls take strings and would write such a name
 * as something else. So each such path component is written under a
 * placeholder name (`.deltaship-<tag>-<n>`, in the same directory), everything
 * below it through that, and at the end the placeholders are renamed to their
 * bytes, deepest first, through the C library (`util/byte_paths.ts`), and the
 * directories that held them get their mtimes back. A symlink whose target is
 * not UTF-8 is made there too.
 *
 * @module
 */
import { FileSystemError, UnsupportedError } from "../errors.ts";
import { encodeName, quote } from "../tar/header.ts";
import { type BytePaths, openBytePaths } from "../util/byte_paths.ts";
import { PosixError } from "../util/posix.ts";

const SURROGATE = /[\ud800-\udfff]/;
const enc = new TextEncoder();

/** Where a checkout writes each path of the tree, and the renames that finish it. */
export class DiskNames {
  readonly #tag = crypto.randomUUID().slice(0, 8);
  #count = 0;
  readonly #disk = new Map<string, string>();
  /** Placeholders made, in the order made (parents before children). */
  readonly #renames: { from: string; parentDisk: string; name: Uint8Array; parent: string }[] = [];
  #calls: BytePaths | undefined;

  constructor(readonly dir: string) {}

  /** The path `path` of the tree (relative, "" for the root) is written at, until {@link finish}. */
  disk(path: string): string {
    if (path === "") return this.dir;
    if (!SURROGATE.test(path)) return `${this.dir}/${path}`;
    const known = this.#disk.get(path);
    if (known !== undefined) return known;
    const slash = path.lastIndexOf("/");
    const parent = slash < 0 ? "" : path.slice(0, slash);
    const name = path.slice(slash + 1);
    const parentDisk = this.disk(parent);
    let disk = `${parentDisk}/${name}`;
    if (!name.isWellFormed()) {
      disk = `${parentDisk}/.deltaship-${this.#tag}-${this.#count++}`;
      this.#renames.push({ from: disk, parentDisk, name: encodeName(name), parent });
    }
    this.#disk.set(path, disk);
    return disk;
  }

  #bytePaths(path: string): BytePaths {
    this.#calls ??= openBytePaths();
    if (!this.#calls) {
      throw new UnsupportedError(
        `${JSON.stringify(path)}: a name that is not UTF-8 needs the C library's calls (FFI permission, Linux)`,
      );
    }
    return this.#calls;
  }

  /** Makes the symlink at `path` to `target`: a target that is not UTF-8 as its bytes. */
  async symlink(target: string, path: string): Promise<void> {
    if (target.isWellFormed()) return await Deno.symlink(target, this.disk(path));
    const calls = this.#bytePaths(path);
    this.#named(path, () => calls.symlink(encodeName(target), enc.encode(this.disk(path))));
  }

  /** Runs a C library call for `path`; its failure is one line naming the path. */
  #named(path: string, call: () => void): void {
    try {
      call();
    } catch (e) {
      if (!(e instanceof PosixError)) throw e;
      const code = /: (E[A-Z]+)/.exec(e.message)?.[1] ?? "EIO";
      throw new FileSystemError(`cannot check out ${quote(path)} into ${this.dir}: ${e.message}`, path, code, {
        cause: e,
      });
    }
  }

  /**
   * Renames every placeholder to its name's bytes, deepest first, then gives each
   * directory that held one its mtime again (`mtimeOf` its path; undefined: leave it).
   */
  finish(mtimeOf: (path: string) => number | undefined): void {
    if (this.#renames.length === 0) return;
    const calls = this.#bytePaths(this.#renames[0].parent);
    const parents = new Set<string>();
    for (const r of [...this.#renames].reverse()) {
      const to = Uint8Array.from([...enc.encode(`${r.parentDisk}/`), ...r.name]);
      this.#named(r.from, () => calls.rename(enc.encode(r.from), to));
      parents.add(r.parent);
    }
    for (const parent of parents) {
      const mtime = mtimeOf(parent);
      const path = encodeName(parent === "" ? this.dir : `${this.dir}/${parent}`);
      if (mtime !== undefined) this.#named(parent, () => calls.setTimes(path, mtime));
    }
  }

  /** Releases the C library. */
  close(): void {
    this.#calls?.close();
  }
}
