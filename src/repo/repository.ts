/**
 * The local content-addressed repository: objects, layer records, raw manifests
 * and configs, image records and tags, laid out as `docs/repository.md` describes.
 *
 * Every write lands in a temporary file and is renamed into place, and an image
 * record is written only after everything it references, so readers never see
 * a partial image, and concurrent writers of the same content agree.
 *
 * @module
 */
import { NotFoundError, RepositoryError, UsageError } from "../errors.ts";
import { type Digest, isDigest, parseDigest, verifyBytes } from "../util/digest.ts";
import { ObjectStore } from "./objects.ts";
import { readFooter, type RecordFooter } from "./layer_record.ts";
import { exists } from "../util/fs.ts";

const FORMAT_FILE = "deltaship-repo.json";
const FORMAT = { format: "deltaship-repo", version: 1 };

/** What the repository knows of one image: kept at `images/<alg>/<hex>.json`. */
export interface ImageRecord {
  /** Digest of the manifest (the image's identity here). */
  manifest: Digest;
  /** Digest of the image config. */
  config: Digest;
  /** The manifest's media type. */
  mediaType: string;
  /** The image's layers, bottom first. */
  layers: { diffId: Digest; tarSize: number }[];
  /** When the image was first stored (ISO 8601). */
  created: string;
}

/** A tag and the manifest it names. */
export interface Tag {
  name: string;
  manifest: Digest;
}

/** Options for {@link Repository.open}. */
export interface OpenOptions {
  /** Create the repository when `root` does not exist (default true). */
  create?: boolean;
  /** Use this temporary directory (a worker shares its parent's) instead of making one. */
  tempDir?: string;
}

function digestPath(base: string, digest: Digest, suffix = ""): string {
  const { algorithm, hex } = parseDigest(digest);
  return `${base}/${algorithm}/${hex}${suffix}`;
}

/** A repository on local disk. Holds no global state; open one per root. */
export class Repository {
  readonly objects: ObjectStore;
  #tempDir: string | undefined;
  #closed = false;
  #tempLock: Deno.FsFile | undefined;
  #ownsTemp: boolean;

  private constructor(readonly root: string, tempDir: string | undefined) {
    this.#tempDir = tempDir;
    this.#ownsTemp = tempDir === undefined;
    this.objects = new ObjectStore(`${root}/objects`, () => this.tempPath());
  }

  /** Opens (and by default creates) the repository at `root`. */
  static async open(root: string, options: OpenOptions = {}): Promise<Repository> {
    const repo = new Repository(root.replace(/\/+$/, "") || "/", options.tempDir);
    if (options.tempDir) return repo;
    let format: unknown;
    try {
      format = JSON.parse(await Deno.readTextFile(`${repo.root}/${FORMAT_FILE}`));
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) {
        throw new RepositoryError(`${repo.root}/${FORMAT_FILE} is unreadable: ${(e as Error).message}`);
      }
      if (options.create === false) throw new NotFoundError(`no deltaship repository at ${repo.root}`);
      await repo.#init();
      return repo;
    }
    const f = format as { format?: string; version?: number };
    if (f.format !== FORMAT.format || f.version !== FORMAT.version) {
      throw new RepositoryError(
        `${repo.root} holds a repository in a format this deltaship does not know (${JSON.stringify(format)})`,
      );
    }
    await repo.#removeStaleTemp();
    return repo;
  }

  /**
   * Creates the layout in a sibling directory and renames it into place, so that
   * concurrent first uses agree and nobody sees a half-made repository.
   */
  async #init(): Promise<void> {
    const staging = `${this.root}.init-${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`;
    await Deno.mkdir(staging, { recursive: true });
    try {
      for (const dir of ["tmp", "layers/sha256", "blobs/sha256", "images/sha256", "tags"]) {
        await Deno.mkdir(`${staging}/${dir}`, { recursive: true });
      }
      for (let i = 0; i < 256; i++) {
        await Deno.mkdir(`${staging}/objects/sha256/${i.toString(16).padStart(2, "0")}`, { recursive: true });
      }
      await Deno.writeTextFile(`${staging}/lock`, "");
      await Deno.writeTextFile(`${staging}/${FORMAT_FILE}`, JSON.stringify(FORMAT) + "\n");
      try {
        await Deno.rename(staging, this.root); // replaces an empty directory, never a full one
      } catch (e) {
        if (await exists(`${this.root}/${FORMAT_FILE}`)) return; // another process made it first
        if (e instanceof Deno.errors.NotFound) throw e;
        throw new RepositoryError(
          `${this.root} exists, is not empty, and is not a deltaship repository; choose another --repo`,
        );
      }
    } finally {
      await Deno.remove(staging, { recursive: true }).catch(() => {});
    }
  }

  // ---- temporary files ----

  /**
   * This process's temporary directory (created on first use). Beside it,
   * `tmp/<name>.lock` stays locked while the process lives: it is locked before
   * it is renamed into place and before the directory is made, so a directory
   * whose lock can be taken (or that has none) belongs to a process that is gone.
   * (Checking process IDs would need /proc, which a compiled deltaship may not read.)
   */
  get tempDir(): string {
    if (this.#closed) throw new RepositoryError(`repository ${this.root} is closed`);
    if (!this.#tempDir) {
      const tmp = `${this.root}/tmp`;
      const name = `${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`;
      Deno.mkdirSync(tmp, { recursive: true });
      const lock = Deno.openSync(`${tmp}/.${name}.lock-new`, { write: true, createNew: true });
      lock.lockSync(true);
      Deno.renameSync(`${tmp}/.${name}.lock-new`, `${tmp}/${name}.lock`);
      Deno.mkdirSync(`${tmp}/${name}`);
      this.#tempLock = lock;
      this.#tempDir = `${tmp}/${name}`;
    }
    return this.#tempDir;
  }

  /** A fresh path in the temporary directory. */
  tempPath(): string {
    return `${this.tempDir}/${crypto.randomUUID()}`;
  }

  /** Removes this process's temporary directory; no temporary file can be made afterwards. */
  async close(): Promise<void> {
    this.#closed = this.#ownsTemp;
    if (this.#ownsTemp && this.#tempDir) {
      await Deno.remove(this.#tempDir, { recursive: true }).catch(() => {});
      await Deno.remove(`${this.#tempDir}.lock`).catch(() => {});
      this.#tempLock?.close();
      this.#tempLock = undefined;
      this.#tempDir = undefined;
    }
  }

  /** True when the lock file at `path` is held by a live process. */
  async #held(path: string): Promise<boolean> {
    let file: Deno.FsFile;
    try {
      file = await Deno.open(path, { write: true });
    } catch (e) {
      return !(e instanceof Deno.errors.NotFound); // when it cannot be told, keep it
    }
    try {
      return !(await file.tryLock(true));
    } finally {
      file.close();
    }
  }

  /**
   * The entries of `tmp/` left by processes that no longer run (killed pulls):
   * directories and their lock files. Never this process's own.
   */
  async staleTemp(): Promise<string[]> {
    const own = this.#tempDir?.slice(this.#tempDir.lastIndexOf("/") + 1);
    const stale: string[] = [];
    try {
      for await (const e of Deno.readDir(`${this.root}/tmp`)) {
        const base = e.name.replace(/^\./, "").replace(/\.lock(-new)?$/, "");
        if (base === own) continue;
        const lock = e.isDirectory ? `${e.name}.lock` : e.name;
        if (!(await this.#held(`${this.root}/tmp/${lock}`))) stale.push(e.name);
      }
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
    const isLock = (n: string) => /\.lock(-new)?$/.test(n);
    return stale.sort((a, b) => Number(isLock(a)) - Number(isLock(b))); // directories before their locks
  }

  /** Removes temporary directories left by processes that no longer run. */
  async #removeStaleTemp(): Promise<number> {
    let removed = 0;
    for (const name of await this.staleTemp()) {
      await Deno.remove(`${this.root}/tmp/${name}`, { recursive: true }).catch(() => {});
      removed++;
    }
    return removed;
  }

  /** Removes every temporary directory but this process's own; only safe under the exclusive lock. */
  async removeAllTemp(): Promise<number> {
    const own = this.#tempDir?.slice(this.#tempDir.lastIndexOf("/") + 1);
    let removed = 0;
    try {
      for await (const e of Deno.readDir(`${this.root}/tmp`)) {
        if (e.name === own || e.name === `${own}.lock`) continue;
        await Deno.remove(`${this.root}/tmp/${e.name}`, { recursive: true }).catch(() => {});
        removed++;
      }
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
    return removed;
  }

  /** Writes a file atomically: temporary file, then rename. */
  async writeAtomic(path: string, bytes: Uint8Array): Promise<void> {
    const tmp = this.tempPath();
    await Deno.writeFile(tmp, bytes);
    await Deno.rename(tmp, path);
  }

  // ---- locking ----

  /**
   * Takes the repository lock: shared for pulls and reads, exclusive for gc. The
   * lock is released when the returned handle is disposed or the process ends.
   */
  async lock(exclusive: boolean): Promise<Disposable> {
    const file = await Deno.open(`${this.root}/lock`, { read: true, write: true, create: true });
    await file.lock(exclusive);
    return { [Symbol.dispose]: () => file.close() };
  }

  // ---- blobs: manifests and configs, raw ----

  /** Path of a stored manifest or config. */
  blobPath(digest: Digest): string {
    return digestPath(`${this.root}/blobs`, digest);
  }

  /** True when the blob is stored. */
  async hasBlob(digest: Digest): Promise<boolean> {
    return await exists(this.blobPath(digest));
  }

  /** The raw bytes of a stored manifest or config. */
  async readBlob(digest: Digest): Promise<Uint8Array> {
    try {
      return await Deno.readFile(this.blobPath(digest));
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) throw new NotFoundError(`blob ${digest} is not in the repository`);
      throw e;
    }
  }

  /** Stores a manifest or config after checking its digest. */
  async putBlob(digest: Digest, bytes: Uint8Array): Promise<void> {
    verifyBytes(`blob ${digest}`, bytes, digest);
    if (await this.hasBlob(digest)) return;
    const path = this.blobPath(digest);
    await Deno.mkdir(path.slice(0, path.lastIndexOf("/")), { recursive: true });
    await this.writeAtomic(path, bytes);
  }

  // ---- layers ----

  /** Path of the record of the layer with this diff_id. */
  layerPath(diffId: Digest): string {
    return digestPath(`${this.root}/layers`, diffId);
  }

  /** True when the layer with this diff_id is stored. */
  async hasLayer(diffId: Digest): Promise<boolean> {
    return await exists(this.layerPath(diffId));
  }

  /** The totals of a stored layer; a clear error when it is missing. */
  async layerInfo(diffId: Digest): Promise<RecordFooter> {
    try {
      return await readFooter(this.layerPath(diffId));
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) throw new NotFoundError(`layer ${diffId} is not in the repository`);
      throw e;
    }
  }

  /** Moves a finished layer record into place under its diff_id. */
  async commitLayer(tmpRecord: string, diffId: Digest): Promise<void> {
    const path = this.layerPath(diffId);
    await Deno.mkdir(path.slice(0, path.lastIndexOf("/")), { recursive: true });
    await Deno.rename(tmpRecord, path);
  }

  // ---- images ----

  #imagePath(manifest: Digest): string {
    return digestPath(`${this.root}/images`, manifest, ".json");
  }

  /** True when an image with this manifest digest is stored. */
  async hasImage(manifest: Digest): Promise<boolean> {
    return await exists(this.#imagePath(manifest));
  }

  /** The record of a stored image. */
  async readImage(manifest: Digest): Promise<ImageRecord> {
    try {
      return JSON.parse(await Deno.readTextFile(this.#imagePath(manifest)));
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) throw new NotFoundError(`image @${manifest} is not in the repository`);
      throw e;
    }
  }

  /**
   * Makes an image visible. Its manifest and config blobs and all its layers must
   * already be stored.
   */
  async putImage(record: ImageRecord): Promise<void> {
    const path = this.#imagePath(record.manifest);
    await Deno.mkdir(path.slice(0, path.lastIndexOf("/")), { recursive: true });
    await this.writeAtomic(path, new TextEncoder().encode(JSON.stringify(record, null, 1) + "\n"));
  }

  /** Removes an image record (not its content; `gc` reclaims that). */
  async removeImage(manifest: Digest): Promise<void> {
    await Deno.remove(this.#imagePath(manifest)).catch((e) => {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    });
  }

  /** Every stored image. */
  async listImages(): Promise<ImageRecord[]> {
    const out: ImageRecord[] = [];
    for await (const alg of Deno.readDir(`${this.root}/images`)) {
      for await (const e of Deno.readDir(`${this.root}/images/${alg.name}`)) {
        if (!e.name.endsWith(".json")) continue;
        out.push(await this.readImage(`${alg.name}:${e.name.slice(0, -5)}`));
      }
    }
    return out.sort((a, b) => a.created.localeCompare(b.created) || a.manifest.localeCompare(b.manifest));
  }

  /** Stored images whose config has this digest (how a delta finds its source). */
  async findByConfig(config: Digest): Promise<ImageRecord[]> {
    return (await this.listImages()).filter((i) => i.config === config);
  }

  // ---- tags ----

  #tagPath(name: string): string {
    return `${this.root}/tags/${encodeURIComponent(checkTagName(name))}`;
  }

  /** The manifest digest a tag names, or undefined. */
  async readTag(name: string): Promise<Digest | undefined> {
    try {
      const d = (await Deno.readTextFile(this.#tagPath(name))).trim();
      if (!isDigest(d)) throw new RepositoryError(`tag ${name} holds a malformed digest; run fsck`);
      return d;
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return undefined;
      throw e;
    }
  }

  /** Points a tag at a manifest digest (replacing what it named). */
  async setTag(name: string, manifest: Digest): Promise<void> {
    await this.writeAtomic(this.#tagPath(name), new TextEncoder().encode(manifest + "\n"));
  }

  /** Removes a tag; false when there was none. */
  async removeTag(name: string): Promise<boolean> {
    try {
      await Deno.remove(this.#tagPath(name));
      return true;
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return false;
      throw e;
    }
  }

  /** Every tag, sorted by name. */
  async listTags(): Promise<Tag[]> {
    const out: Tag[] = [];
    for await (const e of Deno.readDir(`${this.root}/tags`)) {
      if (!e.isFile) continue;
      const name = decodeURIComponent(e.name);
      const manifest = await this.readTag(name);
      if (manifest) out.push({ name, manifest });
    }
    return out.sort((a, b) => a.name.localeCompare(b.name));
  }

  /**
   * Resolves an image argument: `@sha256:<hex>` (a full manifest digest, or a
   * unique prefix of at least 4 hex digits) or a tag name.
   */
  async resolveImage(arg: string): Promise<ImageRecord> {
    if (arg.startsWith("@")) {
      const want = arg.slice(1);
      if (isDigest(want)) return await this.readImage(want);
      const m = /^(sha256|sha512):([0-9a-f]{4,})$/.exec(want);
      if (!m) throw new UsageError(`invalid image reference ${JSON.stringify(arg)}: expected @sha256:<hex> or a tag`);
      const hits = (await this.listImages()).filter((i) => i.manifest.startsWith(want));
      if (hits.length === 1) return hits[0];
      if (hits.length === 0) throw new NotFoundError(`no image with manifest digest ${want}... in the repository`);
      throw new UsageError(`${arg} is ambiguous (${hits.length} images); give more digits`);
    }
    const manifest = await this.readTag(arg);
    if (!manifest) {
      throw new NotFoundError(`no image tagged ${JSON.stringify(arg)} in the repository (see 'deltaship images')`);
    }
    if (!(await this.hasImage(manifest))) {
      throw new RepositoryError(`tag ${JSON.stringify(arg)} names ${manifest}, which is not stored; run fsck`);
    }
    return await this.readImage(manifest);
  }
}

/** Checks that a tag name is usable; returns it. */
export function checkTagName(name: string): string {
  if (name === "" || name.length > 255) {
    throw new UsageError(`invalid tag name ${JSON.stringify(name)}: 1 to 255 characters`);
  }
  if (name.startsWith("@")) throw new UsageError(`invalid tag name ${JSON.stringify(name)}: must not start with '@'`);
  if (name === "." || name === "..") throw new UsageError(`invalid tag name ${JSON.stringify(name)}`);
  // deno-lint-ignore no-control-regex
  if (/[\s\x00-\x1f\x7f]/.test(name)) {
    throw new UsageError(`invalid tag name ${JSON.stringify(name)}: no spaces or control characters`);
  }
  return name;
}
