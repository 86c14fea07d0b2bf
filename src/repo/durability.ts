/**
 * Making repository writes survive a power cut, in the right order and cheaply.
 *
 * A rename makes a file visible at once, but after a power cut the kernel may
 * have kept the new name and lost the data, or kept a later rename and lost an
 * earlier one. So every commit is split by *barriers*: everything written
 * before a barrier is on stable storage before anything after it is made
 * visible. The order the repository keeps is: file data, then the rename that
 * publishes it, then its directory; objects before the layer record naming
 * them; layer records, manifests and configs before the image record; the image
 * record before its tag.
 *
 * On Linux a barrier is one `syncfs(2)` of the repository's filesystem: its cost
 * does not grow with the number of files written (a layer of 3,000 small files
 * costs one call, where `fdatasync` of each would cost 3,000). Elsewhere, or
 * with `DELTASHIP_SYNC=fsync`, each file's data is synced when it is written and
 * each directory named at a barrier is synced there.
 *
 * @module
 */
import { osErrorAt } from "../util/os_error.ts";
import { type FilesystemSync, openFilesystemSync } from "../util/posix.ts";

/** How barriers are made. */
export type SyncMode = "syncfs" | "fsync";

/** Bytes written between background writebacks (see {@link Durability.wrote}). */
export const EARLY_WRITEBACK = 16 << 20;

/** The barriers of one repository (one per thread: it holds a descriptor). */
export class Durability {
  readonly #fs: FilesystemSync | undefined;
  /** Bytes written since writeback was last started. */
  #unflushed = 0;
  /** A writeback started ahead of a barrier and not finished yet. */
  #flushing: Promise<void> | undefined;

  private constructor(fs: FilesystemSync | undefined, readonly root: string) {
    this.#fs = fs;
  }

  /**
   * Prepares barriers for the repository at `root`. `mode` forces one (from
   * `DELTASHIP_SYNC`); syncfs is used when it is available.
   */
  static open(root: string, mode?: SyncMode): Durability {
    return new Durability(mode === "fsync" ? undefined : openFilesystemSync(root), root);
  }

  /** The mode in use. */
  get mode(): SyncMode {
    return this.#fs ? "syncfs" : "fsync";
  }

  /** Call when a file's data is written, before it is renamed into place. */
  async fileWritten(file: Deno.FsFile): Promise<void> {
    if (!this.#fs) await file.syncData();
  }

  /**
   * Call as file data is written: every {@link EARLY_WRITEBACK} bytes, writeback
   * of what is dirty is started in the background (a syncfs on another thread),
   * so that the disk works while the pull computes, and the next barrier finds
   * little left to wait for. Without it, a barrier after a large layer would
   * wait for the whole layer to reach the disk.
   */
  wrote(bytes: number): void {
    if (!this.#fs) return;
    this.#unflushed += bytes;
    if (this.#unflushed < EARLY_WRITEBACK || this.#flushing) return;
    this.#unflushed = 0;
    this.#flushing = this.#fs.sync().catch(() => {}).finally(() => (this.#flushing = undefined));
  }

  /** The synchronous form of {@link fileWritten}. */
  fileWrittenSync(file: Deno.FsFile): void {
    if (!this.#fs) file.syncDataSync();
  }

  /**
   * Everything written and renamed so far reaches stable storage before this
   * returns. `dirs` are the directories whose entries changed since the last
   * barrier (needed only without syncfs). A failure (a full disk found at
   * writeback) names the repository, or the directory synced.
   */
  async barrier(dirs: Iterable<string> = []): Promise<void> {
    if (this.#fs) {
      this.#unflushed = 0;
      try {
        return await this.#fs.sync();
      } catch (e) {
        throw osErrorAt(e, this.root, `cannot sync the repository at ${this.root}`);
      }
    }
    for (const dir of new Set(dirs)) {
      const handle = await Deno.open(dir, { read: true });
      try {
        await handle.sync();
      } catch (e) {
        throw osErrorAt(e, dir, `cannot sync ${dir}`);
      } finally {
        handle.close();
      }
    }
  }

  /** Releases the descriptor (after any writeback in flight). */
  close(): void {
    const fs = this.#fs;
    if (this.#flushing) this.#flushing.finally(() => fs?.close());
    else fs?.close();
  }
}
