/**
 * The object store: regular-file contents kept once each, named by their
 * fs-verity digest (SHA-256, 4096-byte blocks, no salt) at `objects/XX/<62 hex>`,
 * the layout of a composefs object store, so `objects/` is directly the basedir
 * of a composefs mount.
 *
 * Objects are written for one layer at a time into a {@link ObjectStaging} area
 * under the process's temporary directory, and become visible in `objects/`
 * only when that layer commits ({@link ObjectStaging.commit}: data made durable,
 * then renamed into place, then the renames made durable). A layer that fails
 * (a wrong diff_id, a decompression bomb stopped by the size limit, an
 * interrupt) leaves no object behind, and an object that exists is complete
 * (and has fs-verity enabled where the filesystem supports it: see verity.ts).
 *
 * @module
 */
import { fsverityDigest, FsVerityHasher } from "../composefs/fsverity.ts";
import { toHex } from "../util/digest.ts";
import { lstatOrUndefined, writeAll } from "../util/fs.ts";
import { osErrorAt } from "../util/os_error.ts";
import type { Durability } from "./durability.ts";
import { isRegularFileSync } from "./repo_file.ts";
import type { ObjectVerity } from "./verity.ts";

/** Contents up to this size are gathered in memory and written in one go. */
export const SMALL_OBJECT = 1 << 20;

/** How objects are named in messages: by their fs-verity digest. */
export function objectName(hex: string): string {
  return `object ${hex}`;
}

/** Path of the object with fs-verity digest `hex` under the `objects` directory `root`. */
export function objectPath(root: string, hex: string): string {
  return `${root}/${hex.slice(0, 2)}/${hex.slice(2)}`;
}

/** Objects under `<root>/XX/<62 hex>` (XX: the digest's first byte). */
export class ObjectStore {
  constructor(
    /** The `objects` directory. */
    readonly root: string,
    /** Where temporary files go (same filesystem, so rename is atomic). */
    readonly tempPath: () => string,
    readonly durability: Durability,
    /** fs-verity for new objects, as the repository has it. */
    readonly verity: ObjectVerity,
  ) {}

  /** Path of the object with fs-verity digest `hex`. */
  path(hex: string): string {
    return objectPath(this.root, hex);
  }

  /**
   * True when the object is present: a regular file. Anything else at its path
   * (a symbolic link, a directory...) is not the object: content written again
   * replaces it at the layer's commit, or the commit fails naming the path.
   */
  has(hex: string): boolean {
    return isRegularFileSync(this.path(hex));
  }

  /** Starts the staging area for the objects of one layer. */
  async stage(): Promise<ObjectStaging> {
    const dir = this.tempPath();
    await Deno.mkdir(dir);
    return new ObjectStaging(this, dir);
  }
}

/**
 * The objects of one layer being stored: written under a temporary directory,
 * each named by its digest there, and moved into the store by {@link commit}.
 * Content the store (or this area) already has is not written again.
 */
export class ObjectStaging {
  constructor(readonly store: ObjectStore, readonly dir: string) {}

  #has(hex: string): boolean {
    if (this.store.has(hex)) return true;
    try {
      Deno.lstatSync(`${this.dir}/${hex}`);
      return true;
    } catch {
      return false;
    }
  }

  /** Stores bytes held in memory; returns their raw fs-verity digest. */
  putSmall(bytes: Uint8Array): Uint8Array {
    const digest = fsverityDigest(bytes);
    const hex = toHex(digest);
    if (this.#has(hex)) return digest;
    // Written under its final name in the area: a failed write fails the layer, and the area goes with it.
    const path = `${this.dir}/${hex}`;
    const file = Deno.openSync(path, { write: true, createNew: true });
    try {
      let off = 0;
      while (off < bytes.length) off += file.writeSync(bytes.subarray(off));
      this.store.durability.fileWrittenSync(file);
      this.store.durability.wrote(bytes.length);
    } catch (e) {
      throw osErrorAt(e, path);
    } finally {
      file.close();
    }
    return digest;
  }

  /** Starts a streamed object of unknown digest. */
  async begin(): Promise<ObjectWriter> {
    const tmp = `${this.dir}/w-${crypto.randomUUID()}`;
    const file = await Deno.open(tmp, { write: true, createNew: true });
    return new ObjectWriter(this, tmp, file);
  }

  /** Completes a streamed object: named by its digest in the area, or dropped when already stored. */
  async finished(tmp: string, hex: string): Promise<void> {
    if (this.#has(hex)) await Deno.remove(tmp);
    else await Deno.rename(tmp, `${this.dir}/${hex}`);
  }

  /**
   * Makes the staged objects durable and visible: fs-verity enabled on each
   * (where the repository has it), a barrier for their data (and whatever else
   * was written before, such as the layer record), the renames into
   * `objects/`, and a barrier for the renames. Returns how many were added.
   */
  async commit(): Promise<number> {
    const durability = this.store.durability;
    const staged: string[] = [];
    for await (const e of Deno.readDir(this.dir)) {
      if (!e.name.startsWith("w-")) staged.push(e.name); // "w-": an abandoned streamed object
    }
    for (const hex of staged) await this.store.verity.seal(`${this.dir}/${hex}`, objectName(hex));
    await durability.barrier();
    const fans = new Set<string>();
    for (const hex of staged) {
      const path = this.store.path(hex);
      await Deno.rename(`${this.dir}/${hex}`, path);
      fans.add(path.slice(0, path.lastIndexOf("/")));
    }
    const added = staged.length;
    if (added > 0) await durability.barrier(fans);
    await Deno.remove(this.dir, { recursive: true });
    return added;
  }

  /** Drops every staged object. */
  async abort(): Promise<void> {
    await Deno.remove(this.dir, { recursive: true }).catch(() => {});
  }
}

/** A large object being written: bytes in, fs-verity digest out. */
export class ObjectWriter {
  #hash = new FsVerityHasher();
  size = 0;

  constructor(
    readonly staging: ObjectStaging,
    readonly tmp: string,
    readonly file: Deno.FsFile,
  ) {}

  /** Appends content. */
  async write(chunk: Uint8Array): Promise<void> {
    this.#hash.update(chunk);
    this.size += chunk.length;
    try {
      await writeAll(this.file, chunk);
    } catch (e) {
      throw osErrorAt(e, this.tmp);
    }
    this.staging.store.durability.wrote(chunk.length);
  }

  /** Completes the object in the staging area; returns its raw fs-verity digest. */
  async finish(): Promise<Uint8Array> {
    try {
      await this.staging.store.durability.fileWritten(this.file);
    } catch (e) {
      throw osErrorAt(e, this.tmp);
    } finally {
      this.file.close();
    }
    const digest = this.#hash.digest();
    await this.staging.finished(this.tmp, toHex(digest));
    return digest;
  }

  /** Abandons the object. */
  async abort(): Promise<void> {
    try {
      this.file.close();
    } catch { /* closed */ }
    if (await lstatOrUndefined(this.tmp)) await Deno.remove(this.tmp).catch(() => {});
  }
}
