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
import {
  type ConfigDigest,
  type DiffId,
  type Digest,
  type ManifestDigest,
  parseDigest,
  verifyBytes,
} from "../util/digest.ts";
import { ObjectStore } from "./objects.ts";
import { readFooter, type RecordFooter } from "./layer_record.ts";
import { exists, writeAll } from "../util/fs.ts";
import { osErrorAt } from "../util/os_error.ts";
import { MAX_DOCUMENT } from "../oci/documents.ts";
import { Durability, type SyncMode } from "./durability.ts";
import { TempArea } from "./temp_area.ts";
import { createRepository } from "./create.ts";
import {
  encodeFormat,
  FORMAT_FILE,
  FORMAT_VERSION,
  LEGACY_VERSION,
  legacyFormatError,
  readFormat,
  type RepositoryFormat,
} from "./format.ts";
import { TagStore } from "./tag_store.ts";
import { noImageTagged, parseImageArgument } from "./image_argument.ts";
import { ObjectVerity } from "./verity.ts";
import { checkTagName } from "../oci/tag_name.ts";
import {
  type ImageRecord,
  imageRecordNames,
  imageRecordPath,
  type ImageScan,
  readImageRecord,
  scanImageRecords,
} from "./image_record.ts";
import { isRegularFile, problemOf, readRepoFile } from "./repo_file.ts";

export type { ImageRecord } from "./image_record.ts";

/** Options for {@link Repository.open}. */
export interface RepositoryOptions {
  /** Create the repository when `root` does not exist (default true). */
  create?: boolean;
  /** Use this temporary directory (a worker shares its parent's) instead of making one. */
  tempDir?: string;
  /** How commits are made durable (default: syncfs where available; see durability.ts). */
  sync?: SyncMode;
  /**
   * Open a version-1 repository too, for the upgrade (`upgrade.ts`) to work on;
   * otherwise opening one fails saying what to run.
   */
  legacy?: boolean;
}

function digestPath(base: string, digest: Digest): string {
  const { algorithm, hex } = parseDigest(digest);
  return `${base}/${algorithm}/${hex}`;
}

/** A repository on local disk. Holds no global state; open one per root. */
export class Repository {
  readonly objects: ObjectStore;
  /** The barriers that make commits survive a power cut. */
  readonly durability: Durability;
  /** The temporary area, `tmp/`. */
  readonly temp: TempArea;
  /** The tags, `tags/` (read them here; change them through the repository's methods, under its names lock). */
  readonly tags: TagStore;
  #closed = false;
  #ownsTemp: boolean;

  private constructor(
    readonly root: string,
    tempDir: string | undefined,
    sync: SyncMode | undefined,
    /** What the format file said when the repository was opened. */
    readonly format: Readonly<RepositoryFormat>,
  ) {
    this.temp = new TempArea(`${root}/tmp`, tempDir);
    this.tags = new TagStore(`${root}/tags`, (path, bytes) => this.writeAtomic(path, bytes), (dir) => this.sync(dir));
    this.#ownsTemp = tempDir === undefined;
    this.durability = Durability.open(root, sync);
    const verity = new ObjectVerity(format.version === FORMAT_VERSION && format.verity, () => this.#verityLost());
    this.objects = new ObjectStore(`${root}/objects`, () => this.tempPath(), this.durability, verity);
  }

  /**
   * Opens (and by default creates) the repository at `root`. A version-1
   * repository is refused with what to run, unless `options.legacy`.
   */
  static async open(root: string, options: RepositoryOptions = {}): Promise<Repository> {
    const clean = root.replace(/\/+$/, "") || "/";
    if (!options.tempDir && !(await exists(`${clean}/${FORMAT_FILE}`))) {
      if (options.create === false) {
        throw new NotFoundError(
          `no repository at ${clean} (check --repo and $DELTASHIP_REPO; pull creates one)`,
        );
      }
      await createRepository(clean, options.sync);
    }
    const format = await readFormat(clean);
    if (format.version === LEGACY_VERSION && !options.legacy) throw legacyFormatError(clean);
    const repo = new Repository(clean, options.tempDir, options.sync, format);
    if (!options.tempDir) await repo.temp.sweep();
    return repo;
  }

  /**
   * Records, durably, that not every object has fs-verity (the filesystem gave
   * an object none): a later composefs mount must not require it.
   */
  async #verityLost(): Promise<void> {
    const current = await readFormat(this.root);
    if (!current.verity) return;
    await this.writeAtomic(`${this.root}/${FORMAT_FILE}`, encodeFormat({ ...current, verity: false }));
    await this.sync(this.root);
  }

  // ---- temporary files ----

  /** This process's temporary directory (created on first use): see temp_area.ts. */
  get tempDir(): string {
    if (this.#closed) throw new RepositoryError(`repository ${this.root} is closed`);
    return this.temp.dir;
  }

  /** A fresh path in the temporary directory. */
  tempPath(): string {
    return `${this.tempDir}/${crypto.randomUUID()}`;
  }

  /** Removes this process's temporary directory; no temporary file can be made afterwards. */
  async close(): Promise<void> {
    if (!this.#ownsTemp) return;
    this.#closed = true;
    await this.temp.close();
    this.durability.close();
    this.objects.verity.close();
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
    } catch (e) {
      throw osErrorAt(e, path);
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

  /** True when the blob is stored (a regular file: anything else there is replaced when the blob is stored again). */
  async hasBlob(digest: Digest): Promise<boolean> {
    return await isRegularFile(this.blobPath(digest));
  }

  /** The raw bytes of a stored manifest or config (at most the largest document any source accepts). */
  async readBlob(digest: Digest): Promise<Uint8Array> {
    try {
      return await readRepoFile(this.blobPath(digest), MAX_DOCUMENT);
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
  layerPath(diffId: DiffId): string {
    return digestPath(`${this.root}/layers`, diffId);
  }

  /** True when the layer with this diff_id is stored (its record a regular file: see {@link hasBlob}). */
  async hasLayer(diffId: DiffId): Promise<boolean> {
    return await isRegularFile(this.layerPath(diffId));
  }

  /** The totals of a stored layer; a clear error when it is missing. */
  async layerInfo(diffId: DiffId): Promise<RecordFooter> {
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
  async commitLayer(tmpRecord: string, diffId: DiffId): Promise<void> {
    const path = this.layerPath(diffId);
    await Deno.mkdir(path.slice(0, path.lastIndexOf("/")), { recursive: true });
    await Deno.rename(tmpRecord, path);
  }

  // ---- images ----

  #imagePath(manifest: ManifestDigest): string {
    return imageRecordPath(this.root, manifest);
  }

  /**
   * True when an image with this manifest digest is stored: its record is there,
   * damaged or not (so that `rm` can remove a damaged one).
   */
  async hasImage(manifest: ManifestDigest): Promise<boolean> {
    return await exists(this.#imagePath(manifest));
  }

  /** The record of a stored image; a RepositoryError naming its path when it is damaged. */
  async readImage(manifest: ManifestDigest): Promise<ImageRecord> {
    try {
      return await readImageRecord(this.#imagePath(manifest), manifest);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) throw new NotFoundError(`image @${manifest} is not in the repository`);
      const problem = problemOf(e);
      if (problem === undefined) throw e;
      throw new RepositoryError(
        `the record of image @${manifest} (images/${manifest.replace(":", "/")}.json) ${problem}; ` +
          `run fsck, then rm it and pull it again`,
        { cause: e },
      );
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
      if (tag !== undefined) await this.tags.write(tag, record.manifest);
    });
  }

  /** Replaces the record of a stored image (its composefs image made again), atomically and durably. */
  async rewriteImage(record: ImageRecord): Promise<void> {
    await this.#names(async () => {
      const path = this.#imagePath(record.manifest);
      await this.writeAtomic(path, new TextEncoder().encode(JSON.stringify(record, null, 1) + "\n"));
      await this.sync(dirOf(path));
    });
  }

  /** Points `tag` at the stored image `manifest` (a NotFoundError if it is not stored, or no longer). */
  async tagImage(tag: string, manifest: ManifestDigest): Promise<void> {
    checkTagName(tag);
    await this.#names(async () => {
      if (!(await this.hasImage(manifest))) throw new NotFoundError(`image @${manifest} is not in the repository`);
      await this.tags.write(tag, manifest);
    });
  }

  /**
   * Removes an image record and every tag naming it (not its content; `gc`
   * reclaims that). Tags go first, so no tag ever names a missing image.
   * Returns the tags removed; a NotFoundError when the image is not stored.
   */
  async removeImage(manifest: ManifestDigest): Promise<string[]> {
    return await this.#names(async () => {
      if (!(await this.hasImage(manifest))) throw new NotFoundError(`image @${manifest} is not in the repository`);
      const tags = (await this.tags.list()).filter((t) => t.manifest === manifest).map((t) => t.name);
      for (const t of tags) await this.tags.remove(t, { sync: false });
      if (tags.length) await this.sync(this.tags.dir);
      // Recursive: a directory where the record belongs goes too (a damaged record is removed whatever it is).
      await Deno.remove(this.#imagePath(manifest), { recursive: true }).catch(ignoreNotFound);
      await this.sync(dirOf(this.#imagePath(manifest)));
      return tags;
    });
  }

  /** Removes an image record unless a tag names it (an image kept only for the length of a command). */
  async discardUntagged(manifest: ManifestDigest): Promise<boolean> {
    return await this.#names(async () => {
      if ((await this.tags.list()).some((t) => t.manifest === manifest)) return false;
      await Deno.remove(this.#imagePath(manifest)).catch(ignoreNotFound);
      await this.sync(dirOf(this.#imagePath(manifest)));
      return true;
    });
  }

  /** Removes an image record without looking at tags: for gc, under the exclusive lock. */
  async removeImageRecord(manifest: ManifestDigest): Promise<void> {
    await Deno.remove(this.#imagePath(manifest)).catch(ignoreNotFound);
  }

  /**
   * Every stored image whose record can be read, sorted by creation time; damaged
   * records are left out (see {@link scanImages} for them).
   */
  async listImages(): Promise<ImageRecord[]> {
    return (await this.scanImages()).images;
  }

  /** Every entry of `images/`: the usable records, and the damaged ones with their paths. */
  async scanImages(): Promise<ImageScan> {
    return await scanImageRecords(this.root);
  }

  /** Stored images whose config has this digest (how a delta finds its source). */
  async findByConfig(config: ConfigDigest): Promise<ImageRecord[]> {
    return (await this.listImages()).filter((i) => i.config === config);
  }

  // ---- tags ----

  /**
   * Removes the tag file for `name`, whatever it holds (so a damaged tag can
   * always be removed). `name` may also be the raw file name of a tag file whose
   * name does not decode. Returns the digest it named when it named one, or
   * false when there was no such tag.
   */
  async untag(name: string): Promise<{ manifest?: ManifestDigest } | false> {
    return await this.#names(() => this.tags.remove(name));
  }

  /**
   * Resolves an image argument: `@sha256:<hex>` (a full manifest digest, or a
   * unique prefix of at least 4 hex digits) or a tag name.
   */
  async resolveImage(arg: string): Promise<ImageRecord> {
    return await this.readImage(await this.resolveManifest(arg));
  }

  /**
   * The manifest digest an image argument names (as {@link resolveImage}), found
   * without reading its record, so that a damaged one can be named (and removed).
   * A full digest is returned as it is, stored or not.
   */
  async resolveManifest(arg: string): Promise<ManifestDigest> {
    const parsed = parseImageArgument(arg);
    if (parsed.kind === "digest") return parsed.digest;
    if (parsed.kind === "prefix") {
      const want = parsed.prefix;
      const hits = (await imageRecordNames(this.root)).filter((manifest) => manifest.startsWith(want));
      if (hits.length === 1) return hits[0];
      if (hits.length === 0) throw new NotFoundError(`no image with manifest digest ${want}... in the repository`);
      throw new InvalidArgumentError(`${arg} is ambiguous (${hits.length} images); give more digits`);
    }
    const manifest = await this.tags.read(arg);
    if (!manifest) throw noImageTagged(arg);
    if (!(await this.hasImage(manifest))) {
      if ((await this.tags.read(arg)) !== manifest) throw noImageTagged(arg); // removed meanwhile by another process
      throw new RepositoryError(`tag ${JSON.stringify(arg)} names ${manifest}, which is not stored; run fsck`);
    }
    return manifest;
  }
}

function dirOf(path: string): string {
  return path.slice(0, path.lastIndexOf("/"));
}

function ignoreNotFound(e: unknown): void {
  if (!(e instanceof Deno.errors.NotFound)) throw e;
}
