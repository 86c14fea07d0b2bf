/**
 * fs-verity on the repository's objects. Where the filesystem supports it,
 * every object gets fs-verity enabled before it becomes visible, so the kernel
 * refuses reads of a changed object and a composefs mount can require it;
 * where it does not (EOPNOTSUPP on most filesystems as set up), objects are
 * stored without, silently, and the format file records that (`verity:
 * false`), which a mount reads to know whether it can require verity.
 *
 * @module
 */
import { RepositoryError } from "../errors.ts";
import { type FsVerity, openFsVerity, PosixError } from "../util/posix.ts";

/**
 * Enables fs-verity on objects as the repository's format file asks. Once an
 * object cannot get it, `onUnsupported` records that (the format file's
 * `verity` becomes false, durably) before the object is published, and no
 * further object is tried.
 */
export class ObjectVerity {
  #enabled: boolean;
  readonly #fs: FsVerity | undefined;

  constructor(enabled: boolean, readonly onUnsupported: () => Promise<void>) {
    this.#fs = enabled ? openFsVerity() : undefined;
    this.#enabled = enabled;
  }

  /** True while every object of the repository has fs-verity. */
  get enabled(): boolean {
    return this.#enabled;
  }

  /**
   * Enables fs-verity on the object file at `path` (complete, closed, not yet
   * visible), when the repository has it. An object the filesystem cannot give
   * it turns the repository's record off; any other failure (no space for the
   * Merkle tree, a read-only filesystem) is an error naming the object.
   */
  async seal(path: string, name: string): Promise<void> {
    if (!this.#enabled) return;
    let result;
    try {
      result = this.#fs ? await this.#fs.enable(path) : "unsupported";
    } catch (e) {
      if (!(e instanceof PosixError)) throw e;
      throw new RepositoryError(`cannot enable fs-verity on ${name}: ${e.message}`, { cause: e });
    }
    if (result === "enabled") return;
    this.#enabled = false;
    await this.onUnsupported();
  }

  /** Releases the C library. */
  close(): void {
    this.#fs?.close();
  }
}

/**
 * Whether fs-verity can be enabled on files in the directory `dir` (a new
 * repository's, or one being upgraded): a small file is made there, enabling
 * is tried, and the file removed.
 */
export async function probeVerity(dir: string): Promise<boolean> {
  const fs = openFsVerity();
  if (!fs) return false;
  const probe = `${dir}/verity-probe-${crypto.randomUUID().slice(0, 8)}`;
  try {
    await Deno.writeFile(probe, new TextEncoder().encode("fs-verity probe\n"), { createNew: true });
    return (await fs.enable(probe)) === "enabled";
  } catch {
    return false;
  } finally {
    fs.close();
    await Deno.remove(probe).catch(() => {});
  }
}
