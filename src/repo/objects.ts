/**
 * The object store: regular-file contents kept once each, named by their SHA-256.
 * Writes go to a temporary file first and are renamed into place, so an object
 * that exists is always complete.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { toHex } from "../util/digest.ts";
import { writeAll } from "../util/fs.ts";

/** Contents up to this size are gathered in memory and written in one go. */
export const SMALL_OBJECT = 1 << 20;

/** Objects under `<root>/sha256/xx/<hex>`. */
export class ObjectStore {
  constructor(
    /** The `objects` directory. */
    readonly root: string,
    /** Where temporary files go (same filesystem, so rename is atomic). */
    readonly tempPath: () => string,
  ) {}

  /** Path of the object with SHA-256 `hex`. */
  path(hex: string): string {
    return `${this.root}/sha256/${hex.slice(0, 2)}/${hex}`;
  }

  /** True when the object is present. */
  has(hex: string): boolean {
    try {
      Deno.lstatSync(this.path(hex));
      return true;
    } catch {
      return false;
    }
  }

  /**
   * Stores bytes held in memory; returns their raw SHA-256. An object already
   * present is replaced by identical bytes (one rename, cheaper than asking first).
   */
  putSmall(bytes: Uint8Array): Uint8Array {
    const digest = new Uint8Array(createHash("sha256").update(bytes).digest());
    const tmp = this.tempPath();
    Deno.writeFileSync(tmp, bytes);
    Deno.renameSync(tmp, this.path(toHex(digest)));
    return digest;
  }

  /** Starts a streamed object of unknown digest. */
  async begin(): Promise<ObjectWriter> {
    const tmp = this.tempPath();
    const file = await Deno.open(tmp, { write: true, createNew: true });
    return new ObjectWriter(this, tmp, file);
  }
}

/** A large object being written: bytes in, digest out. */
export class ObjectWriter {
  #hash = createHash("sha256");
  size = 0;

  constructor(
    readonly store: ObjectStore,
    readonly tmp: string,
    readonly file: Deno.FsFile,
  ) {}

  /** Appends content. */
  async write(chunk: Uint8Array): Promise<void> {
    this.#hash.update(chunk);
    this.size += chunk.length;
    await writeAll(this.file, chunk);
  }

  /** Completes the object and moves it into place; returns its raw SHA-256. */
  async finish(): Promise<Uint8Array> {
    this.file.close();
    const digest = new Uint8Array(this.#hash.digest());
    await Deno.rename(this.tmp, this.store.path(toHex(digest)));
    return digest;
  }

  /** Abandons the object. */
  async abort(): Promise<void> {
    try {
      this.file.close();
    } catch { /* closed */ }
    await Deno.remove(this.tmp).catch(() => {});
  }
}
