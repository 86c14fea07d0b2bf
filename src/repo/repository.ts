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
import { InvalidArgumentError, NotFoundError, RepositoryError } from "../errors.ts";
import { type Digest, isDigest, parseDigest, verifyBytes } from "../util/digest.ts";
import { ObjectStore } from "./objects.ts";
import { readFooter, type RecordFooter } from "./layer_record.ts";
import { exists, lstatOrUndefined, writeAll } from "../util/fs.ts";
import { Durability, type SyncMode } from "./durability.ts";
import { checkTagName } from "../oci/tag_name.ts";

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

/** A file in `tags/` that is not a usable tag (damaged, or put there by hand). */
export interface MalformedTag {
  /** The file's name in `tags/`. */
  file: string;
  /** The tag name it decodes to, when it decodes. */
  name?: string;
  /** What is wrong with it. */
  problem: string;
}

/** Every file of `tags/`: the usable tags and the malformed ones. */
export interface TagScan {
  tags: Tag[];
  malformed: MalformedTag[];
}

/** Options for {@link Repository.open}. */
export interface OpenOptions {
  /** Create the repository when `root` does not exist (default true). */
  create?: boolean;
  /** Use this temporary directory (a worker shares its parent's) instead of making one. */
  tempDir?: string;
  /** How commits are made durable (default: syncfs where available; see durability.ts). */
  sync?: SyncMode;
}

function digestPath(base: string, digest: Digest, suffix = ""): string {
  const { algorithm, hex } = parseDigest(digest);
  return `${base}/${algorithm}/${hex}${suffix}`;
}

/** A repository on local disk. Holds no global state; open one per root. */
export class Repository {
  readonly objects: ObjectStore;
  /** The barriers that make commits survive a power cut. */
  readonly durability: Durability;
  #tempDir: string | undefined;
  #closed = false;
  #tempLock: Deno.FsFile | undefined;
  #ownsTemp: boolean;

  private constructor(readonly root: string, tempDir: string | undefined, sync: SyncMode | undefined) {
    this.#tempDir = tempDir;
    this.#ownsTemp = tempDir === undefined;
    this.durability = Durability.open(root, sync);
    this.objects = new ObjectStore(`${root}/objects`, () => this.tempPath(), this.durability);
  }

  /** Opens (and by default creates) the repository at `root`. */
  static async open(root: string, options: OpenOptions = {}): Promise<Repository> {
    const clean = root.replace(/\/+$/, "") || "/";
    if (options.tempDir) return new Repository(clean, options.tempDir, options.sync);
    if (!(await exists(`${clean}/${FORMAT_FILE}`))) {
      if (options.create === false) throw new NotFoundError(`no deltaship repository at ${clean}`);
      await Repository.#init(clean, options.sync);
    }
    const repo = new Repository(clean, undefined, options.sync);
    let format: unknown;
    try {
      format = JSON.parse(await Deno.readTextFile(`${repo.root}/${FORMAT_FILE}`));
    } catch (e) {
      repo.durability.close();
      throw new RepositoryError(`${repo.root}/${FORMAT_FILE} is unreadable`, { cause: e });
    }
    const f = format as { format?: string; version?: number };
    if (f?.format !== FORMAT.format || f?.version !== FORMAT.version) {
      repo.durability.close();
      throw new RepositoryError(
        `${repo.root} holds a repository in a format this deltaship does not know (${JSON.stringify(format)})`,
      );
    }
    await repo.sweepTemp();
    return repo;
  }

  /**
   * Creates the layout in a sibling directory and renames it into place, so that
   * concurrent first uses agree and nobody sees a half-made repository. The
   * layout is made durable before the rename, and the rename after it.
   */
  static async #init(root: string, sync: SyncMode | undefined): Promise<void> {
    const staging = `${root}.init-${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`;
    await Deno.mkdir(staging, { recursive: true });
    const durability = Durability.open(staging, sync);
    try {
      const dirs = ["tmp", "layers/sha256", "blobs/sha256", "images/sha256", "tags"];
      for (const dir of dirs) await Deno.mkdir(`${staging}/${dir}`, { recursive: true });
      const fans = [];
      for (let i = 0; i < 256; i++) {
        fans.push(`${staging}/objects/sha256/${i.toString(16).padStart(2, "0")}`);
        await Deno.mkdir(fans[i], { recursive: true });
      }
      await Deno.writeTextFile(`${staging}/lock`, "");
      await Deno.writeTextFile(`${staging}/${FORMAT_FILE}`, JSON.stringify(FORMAT) + "\n");
      const format = await Deno.open(`${staging}/${FORMAT_FILE}`, { read: true });
      try {
        await durability.fileWritten(format);
      } finally {
        format.close();
      }
      await durability.barrier([
        staging,
        ...dirs.map((d) => `${staging}/${d}`),
        `${staging}/layers`,
        `${staging}/blobs`,
        `${staging}/images`,
        `${staging}/objects`,
        `${staging}/objects/sha256`,
        ...fans,
      ]);
      try {
        await Deno.rename(staging, root); // replaces an empty directory, never a full one
      } catch (e) {
        if (await exists(`${root}/${FORMAT_FILE}`)) return; // another process made it first
        if (e instanceof Deno.errors.NotFound) throw e;
        throw new RepositoryError(
          `${root} exists, is not empty, and is not a deltaship repository; choose another --repo`,
        );
      }
      await durability.barrier([root.slice(0, root.lastIndexOf("/")) || "/"]);
    } finally {
      durability.close();
      await Deno.remove(staging, { recursive: true }).catch(() => {});
    }
  }

  // ---- temporary files ----

  /**
   * This process's temporary directory (created on first use). Beside it,
   * `tmp/<name>.lock` stays locked while the process lives. The lock file is
   * created, locked, and then checked to be still in place (a sweeper may have
   * taken and removed it in between: then another name is tried); only then is
   * the directory made. So a directory whose lock can be taken, or that has
   * none, belongs to a process that is gone. (Checking process IDs would need
   * /proc, which a compiled deltaship may not read.)
   */
  get tempDir(): string {
    if (this.#closed) throw new RepositoryError(`repository ${this.root} is closed`);
    if (!this.#tempDir) {
      const tmp = `${this.root}/tmp`;
      Deno.mkdirSync(tmp, { recursive: true });
      for (;;) {
        const name = `${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`;
        const lockPath = `${tmp}/${name}.lock`;
        const lock = Deno.openSync(lockPath, { write: true, createNew: true });
        lock.lockSync(true);
        if (sameFile(lock.statSync(), lstatSyncOrUndefined(lockPath))) {
          Deno.mkdirSync(`${tmp}/${name}`);
          this.#tempLock = lock;
          this.#tempDir = `${tmp}/${name}`;
          break;
        }
        lock.close(); // swept before it was locked: it is no longer linked
      }
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
    if (this.#ownsTemp) this.durability.close();
  }

  /**
   * Sweeps `tmp/` of what processes that are gone left behind (killed pulls):
   * for each lock file that can be locked, its directory and then the lock file
   * itself are removed while it is held, so a process that has just created a
   * lock file and not yet locked it finds it gone and picks another name. A
   * directory with no lock file is an orphan. Never this process's own. With
   * `dryRun`, only counts. Returns the directories and their bytes.
   */
  async sweepTemp(dryRun = false): Promise<{ dirs: number; bytes: number }> {
    const tmp = `${this.root}/tmp`;
    const own = this.#tempDir?.slice(this.#tempDir.lastIndexOf("/") + 1);
    const names: Deno.DirEntry[] = [];
    try {
      for await (const e of Deno.readDir(tmp)) names.push(e);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return { dirs: 0, bytes: 0 };
      throw e;
    }
    let dirs = 0;
    let bytes = 0;
    const dropDir = async (name: string) => {
      const path = `${tmp}/${name}`;
      const st = await lstatOrUndefined(path);
      if (!st) return;
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
          file = await Deno.open(`${tmp}/${e.name}`, { write: true });
        } catch {
          continue; // gone already, or cannot be told: keep
        }
        try {
          if (!(await file.tryLock(true))) continue; // its process lives
          if (!lockName[2]) await dropDir(lockName[1]);
          if (!dryRun) await Deno.remove(`${tmp}/${e.name}`).catch(() => {});
        } finally {
          file.close();
        }
      } else if (e.isDirectory && e.name !== own) {
        if (!(await exists(`${tmp}/${e.name}.lock`))) await dropDir(e.name);
      }
    }
    return { dirs, bytes };
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

  /**
   * Writes a file atomically: temporary file, then rename. Durable only after the
   * next {@link sync} (which must name `path`'s directory).
   */
  async writeAtomic(path: string, bytes: Uint8Array): Promise<void> {
    const tmp = this.tempPath();
    const file = await Deno.open(tmp, { write: true, createNew: true });
    try {
      await writeAll(file, bytes);
      await this.durability.fileWritten(file);
    } finally {
      file.close();
    }
    await Deno.rename(tmp, path);
  }

  /** A barrier: everything written so far survives a power cut. `dirs` as {@link Durability.barrier}. */
  async sync(...dirs: string[]): Promise<void> {
    await this.durability.barrier(dirs);
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

  /**
   * Runs `change` holding the names lock (`names.lock`, exclusive): every change
   * to image records and tags happens under it, so a tag is never written for an
   * image that another process is removing, and a check made inside `change`
   * still holds when it acts. Held briefly; gc needs no names lock (its exclusive
   * repository lock keeps everyone else out).
   */
  async #names<T>(change: () => Promise<T>): Promise<T> {
    const file = await Deno.open(`${this.root}/names.lock`, { read: true, write: true, create: true });
    try {
      await file.lock(true);
      return await change();
    } finally {
      file.close();
    }
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

  /**
   * Moves a finished layer record into place under its diff_id. Its data and the
   * objects it names must be durable already; the rename becomes durable at the
   * next barrier (the image commit's first).
   */
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
    let text: string;
    try {
      text = await Deno.readTextFile(this.#imagePath(manifest));
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) throw new NotFoundError(`image @${manifest} is not in the repository`);
      throw e;
    }
    try {
      return JSON.parse(text);
    } catch (e) {
      throw new RepositoryError(`the record of image @${manifest} is damaged; run fsck`, { cause: e });
    }
  }

  /**
   * Makes an image visible, durably and in order: its manifest and config bytes
   * (checked against their digests), then a barrier (which also covers the layer
   * records renamed since the last one), then the image record, a barrier, the
   * tag, a barrier. Its layers must be stored already.
   */
  async commitImage(record: ImageRecord, manifestBytes: Uint8Array, configBytes: Uint8Array, tag?: string) {
    await this.putBlob(record.config, configBytes);
    await this.putBlob(record.manifest, manifestBytes);
    const layerDirs = record.layers.map((l) => dirOf(this.layerPath(l.diffId)));
    await this.sync(dirOf(this.blobPath(record.config)), dirOf(this.blobPath(record.manifest)), ...layerDirs);
    await this.#names(async () => {
      const path = this.#imagePath(record.manifest);
      if (!(await exists(path))) {
        await Deno.mkdir(dirOf(path), { recursive: true });
        await this.writeAtomic(path, new TextEncoder().encode(JSON.stringify(record, null, 1) + "\n"));
        await this.sync(dirOf(path));
      }
      if (tag !== undefined) await this.#setTag(tag, record.manifest);
    });
  }

  /** Points `tag` at the stored image `manifest` (a NotFoundError if it is not stored, or no longer). */
  async tagImage(tag: string, manifest: Digest): Promise<void> {
    checkTagName(tag);
    await this.#names(async () => {
      if (!(await this.hasImage(manifest))) throw new NotFoundError(`image @${manifest} is not in the repository`);
      await this.#setTag(tag, manifest);
    });
  }

  async #setTag(tag: string, manifest: Digest): Promise<void> {
    await this.writeAtomic(this.#tagPath(tag), new TextEncoder().encode(manifest + "\n"));
    await this.sync(`${this.root}/tags`);
  }

  /**
   * Removes an image record and every tag naming it (not its content; `gc`
   * reclaims that). Tags go first, so no tag ever names a missing image.
   * Returns the tags removed; a NotFoundError when the image is not stored.
   */
  async removeImage(manifest: Digest): Promise<string[]> {
    return await this.#names(async () => {
      if (!(await this.hasImage(manifest))) throw new NotFoundError(`image @${manifest} is not in the repository`);
      const tags = (await this.listTags()).filter((t) => t.manifest === manifest).map((t) => t.name);
      for (const t of tags) await Deno.remove(this.#tagPath(t)).catch(ignoreNotFound);
      if (tags.length) await this.sync(`${this.root}/tags`);
      await Deno.remove(this.#imagePath(manifest)).catch(ignoreNotFound);
      await this.sync(dirOf(this.#imagePath(manifest)));
      return tags;
    });
  }

  /** Removes an image record unless a tag names it (an image kept only for the length of a command). */
  async discardUntagged(manifest: Digest): Promise<boolean> {
    return await this.#names(async () => {
      if ((await this.listTags()).some((t) => t.manifest === manifest)) return false;
      await Deno.remove(this.#imagePath(manifest)).catch(ignoreNotFound);
      await this.sync(dirOf(this.#imagePath(manifest)));
      return true;
    });
  }

  /** Removes an image record without looking at tags: for gc, under the exclusive lock. */
  async removeImageRecord(manifest: Digest): Promise<void> {
    await Deno.remove(this.#imagePath(manifest)).catch(ignoreNotFound);
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
    return `${this.root}/tags/${encodeURIComponent(name)}`;
  }

  /** The manifest digest a tag names, or undefined. A malformed tag file is a RepositoryError. */
  async readTag(name: string): Promise<Digest | undefined> {
    checkTagName(name);
    let text: string;
    try {
      text = await Deno.readTextFile(this.#tagPath(name));
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return undefined;
      throw e;
    }
    const d = text.trim();
    if (!isDigest(d)) {
      throw new RepositoryError(
        `tag ${JSON.stringify(name)} is malformed (it holds ${JSON.stringify(d.slice(0, 80))}, not a digest); ` +
          `remove it with: deltaship untag ${name}`,
      );
    }
    return d;
  }

  /**
   * Removes the tag file for `name`, whatever it holds (so a damaged tag can
   * always be removed). `name` may also be the raw file name of a tag file whose
   * name does not decode. Returns the digest it named when it named one, or
   * false when there was no such tag.
   */
  async untag(name: string): Promise<{ manifest?: Digest } | false> {
    const files = [encodeURIComponent(name)];
    if (/^[^/\0]+$/.test(name) && name !== "." && name !== ".." && !files.includes(name)) files.push(name);
    return await this.#names(async () => {
      for (const file of files) {
        const path = `${this.root}/tags/${file}`;
        const st = await lstatOrUndefined(path);
        if (!st) continue;
        const text = st.isFile ? (await Deno.readTextFile(path).catch(() => "")).trim() : "";
        try {
          await Deno.remove(path, { recursive: true });
        } catch (e) {
          if (e instanceof Deno.errors.NotFound) continue;
          throw e;
        }
        await this.sync(`${this.root}/tags`);
        return isDigest(text) ? { manifest: text } : {};
      }
      return false;
    });
  }

  /** Every file of `tags/`, sorted by name: the usable tags and the malformed ones. */
  async scanTags(): Promise<TagScan> {
    const tags: Tag[] = [];
    const malformed: MalformedTag[] = [];
    for await (const e of Deno.readDir(`${this.root}/tags`)) {
      let name: string;
      try {
        name = decodeURIComponent(e.name);
        if (encodeURIComponent(name) !== e.name) throw new URIError("not in canonical form");
        checkTagName(name);
      } catch {
        malformed.push({ file: e.name, problem: "its file name is not a valid tag name" });
        continue;
      }
      if (!e.isFile) {
        malformed.push({ file: e.name, name, problem: "it is not a regular file" });
        continue;
      }
      try {
        const manifest = await this.readTag(name);
        if (manifest) tags.push({ name, manifest });
      } catch (err) {
        if (!(err instanceof RepositoryError)) throw err;
        malformed.push({ file: e.name, name, problem: "it does not hold a manifest digest" });
      }
    }
    tags.sort((a, b) => a.name.localeCompare(b.name));
    malformed.sort((a, b) => a.file.localeCompare(b.file));
    return { tags, malformed };
  }

  /** Every usable tag, sorted by name (malformed tag files are skipped: see {@link scanTags}). */
  async listTags(): Promise<Tag[]> {
    return (await this.scanTags()).tags;
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
      if (!m) {
        throw new InvalidArgumentError(
          `invalid image reference ${JSON.stringify(arg)}: expected @sha256:<hex> or a tag`,
        );
      }
      const hits = (await this.listImages()).filter((i) => i.manifest.startsWith(want));
      if (hits.length === 1) return hits[0];
      if (hits.length === 0) throw new NotFoundError(`no image with manifest digest ${want}... in the repository`);
      throw new InvalidArgumentError(`${arg} is ambiguous (${hits.length} images); give more digits`);
    }
    const manifest = await this.readTag(arg);
    if (!manifest) {
      throw new NotFoundError(`no image tagged ${JSON.stringify(arg)} in the repository (see 'deltaship images')`);
    }
    if (!(await this.hasImage(manifest))) {
      if ((await this.readTag(arg)) !== manifest) { // removed meanwhile by another process
        throw new NotFoundError(`no image tagged ${JSON.stringify(arg)} in the repository (see 'deltaship images')`);
      }
      throw new RepositoryError(`tag ${JSON.stringify(arg)} names ${manifest}, which is not stored; run fsck`);
    }
    return await this.readImage(manifest);
  }
}

function dirOf(path: string): string {
  return path.slice(0, path.lastIndexOf("/"));
}

function ignoreNotFound(e: unknown): void {
  if (!(e instanceof Deno.errors.NotFound)) throw e;
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
