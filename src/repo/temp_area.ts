/**
 * The repository's temporary area, `tmp/`: one directory per process, and the
 * sweep that removes what processes that are gone left behind (killed pulls).
 *
 * Each process's `tmp/<pid>-<id>/` has a lock file beside it,
 * `tmp/<pid>-<id>.lock`, held locked (flock) while the process lives. The lock
 * file is created, locked, and then checked to be still in place (a sweeper may
 * have taken and removed it in between: then another name is tried); only then
 * is the directory made. So a directory whose lock can be taken, or that has
 * none, belongs to a process that is gone. (Checking process IDs would need
 * /proc, which a compiled deltaship may not read.)
 *
 * @module
 */
import { exists, lstatOrUndefined, treeSize } from "../util/fs.ts";

/** A `tmp/` directory and this process's place in it. */
export class TempArea {
  #dir: string | undefined;
  #lock: Deno.FsFile | undefined;

  /** `root` is the `tmp/` directory; `given`, a directory to use as this process's own (a worker's parent's). */
  constructor(readonly root: string, given?: string) {
    this.#dir = given;
  }

  /** This process's directory, made (with its lock) on first use. */
  get dir(): string {
    if (!this.#dir) {
      Deno.mkdirSync(this.root, { recursive: true });
      for (;;) {
        const name = `${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`;
        const lockPath = `${this.root}/${name}.lock`;
        const lock = Deno.openSync(lockPath, { write: true, createNew: true });
        lock.lockSync(true);
        if (sameFile(lock.statSync(), lstatSyncOrUndefined(lockPath))) {
          Deno.mkdirSync(`${this.root}/${name}`);
          this.#lock = lock;
          this.#dir = `${this.root}/${name}`;
          break;
        }
        lock.close(); // swept before it was locked: it is no longer linked
      }
    }
    return this.#dir;
  }

  /** Removes this process's directory and its lock (when this process made them). */
  async close(): Promise<void> {
    if (!this.#lock || !this.#dir) return;
    await Deno.remove(this.#dir, { recursive: true }).catch(() => {});
    await Deno.remove(`${this.#dir}.lock`).catch(() => {});
    this.#lock.close();
    this.#lock = undefined;
    this.#dir = undefined;
  }

  /**
   * Sweeps what processes that are gone left behind: for each lock file that can
   * be locked, its directory and then the lock file itself are removed while it
   * is held, so a process that has just created a lock file and not yet locked it
   * finds it gone and picks another name. A directory with no lock file is an
   * orphan. Never this process's own. With `dryRun`, only counts. Returns the
   * directories and their bytes.
   */
  async sweep(dryRun = false): Promise<{ dirs: number; bytes: number }> {
    const own = this.#dir?.slice(this.#dir.lastIndexOf("/") + 1);
    const names: Deno.DirEntry[] = [];
    try {
      for await (const e of Deno.readDir(this.root)) names.push(e);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return { dirs: 0, bytes: 0 };
      throw e;
    }
    let dirs = 0;
    let bytes = 0;
    const dropDir = async (name: string) => {
      const path = `${this.root}/${name}`;
      if (!(await lstatOrUndefined(path))) return;
      dirs++;
      bytes += await treeSize(path);
      if (!dryRun) await Deno.remove(path, { recursive: true }).catch(() => {});
    };
    for (const e of names) {
      const lockName = /^\.?(.*)\.lock(-new)?$/.exec(e.name);
      if (lockName) {
        if (lockName[1] === own) continue;
        let file: Deno.FsFile;
        try {
          file = await Deno.open(`${this.root}/${e.name}`, { write: true });
        } catch {
          continue; // gone already, or cannot be told: keep
        }
        try {
          if (!(await file.tryLock(true))) continue; // its process lives
          if (!lockName[2]) await dropDir(lockName[1]);
          if (!dryRun) await Deno.remove(`${this.root}/${e.name}`).catch(() => {});
        } finally {
          file.close();
        }
      } else if (e.isDirectory && e.name !== own) {
        if (!(await exists(`${this.root}/${e.name}.lock`))) await dropDir(e.name);
      }
    }
    return { dirs, bytes };
  }
}

function lstatSyncOrUndefined(path: string): Deno.FileInfo | undefined {
  try {
    return Deno.lstatSync(path);
  } catch {
    return undefined;
  }
}

/** True when two stats are of the same file (device and inode). */
function sameFile(a: Deno.FileInfo, b: Deno.FileInfo | undefined): boolean {
  return b !== undefined && a.dev === b.dev && a.ino !== null && a.ino === b.ino;
}
