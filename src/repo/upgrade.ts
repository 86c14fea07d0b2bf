/**
 * Upgrading a repository of format version 1 (objects named by SHA-256 at
 * `objects/sha256/xx/<64 hex>`, records `DSLAYER1`) in place to version 2
 * (objects named by fs-verity digest at `objects/XX/<62 hex>`, records
 * `DSLAYER2`), as the first command that writes to it opens it.
 *
 * The upgrade is crash-safe by its order, with no journal: under the exclusive
 * repository lock, each layer record in turn has its objects read once (their
 * SHA-256 checked against their old name, their fs-verity digest computed),
 * hard-linked under their new names (fs-verity enabled where the filesystem has
 * it), and is rewritten with the new names into a temporary file; a barrier
 * makes the links and the new record durable, and the new record is renamed
 * over the old one. Until every record is rewritten the old objects all stay,
 * so a record of either format always finds its objects. Then the format file
 * says version 2 (after a barrier), and only then is `objects/sha256/`
 * removed. A killed upgrade leaves a version-1 repository some of whose records
 * are already rewritten (told apart by their magic): the next command that
 * writes resumes it, skipping them; one killed while removing the old objects
 * leaves a version-2 repository whose leftovers the next writer removes.
 *
 * A record that cannot be carried over intact (an object missing, or not
 * matching its SHA-256 name, or a record that does not parse) is dropped and
 * counted: fsck then names the images that need the layer, and pulling them
 * again (after `rm`) restores it. Objects no record names are not carried over.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { FsVerityHasher } from "../composefs/fsverity.ts";
import { DeltashipError, FileSystemError, RepositoryError } from "../errors.ts";
import { asDiffId, type DiffId, fromHex, isDigest, toHex } from "../util/digest.ts";
import { treeSize } from "../util/fs.ts";
import { type ProgressSink, silentProgress } from "../util/progress.ts";
import { Yielder } from "../util/yielder.ts";
import { type ComposefsUpgrade, upgradeComposefsImages } from "./composefs_upgrade.ts";
import { objectFans } from "./create.ts";
import { encodeFormat, FORMAT_FILE, FORMAT_VERSION, LEGACY_OBJECTS_DIR, readFormat } from "./format.ts";
import { LayerRecordWriter, readRecord, type RecordFooter, type RecordItem, recordVersion } from "./layer_record.ts";
import { objectName, objectPath } from "./objects.ts";
import { RepoFile } from "./repo_file.ts";
import { Repository, type RepositoryOptions } from "./repository.ts";
import { ObjectVerity, probeVerity } from "./verity.ts";

/** What an upgrade did. */
export interface UpgradeSummary {
  /** Layer records rewritten by this run (an interrupted run's are not counted again). */
  layers: number;
  /** Objects read, checked and renamed. */
  objects: number;
  /** Their bytes. */
  bytes: number;
  /** Layers that could not be carried over intact, whose records were dropped. */
  dropped: DiffId[];
  /** True when fs-verity was enabled on every object. */
  verity: boolean;
  /** Wall time, in seconds. */
  seconds: number;
}

/** Options for {@link openForWriting}. */
export interface WriteOpenOptions extends RepositoryOptions {
  /** Where the upgrade of a version-1 repository reports its bytes. */
  progress?: ProgressSink;
}

/** The progress unit of the upgrade. */
const PROGRESS_ID = "repository";
/** Old names remembered (for objects many layers share); past this, the memory is cleared and objects read again. */
const MEMO_LIMIT = 1 << 18;
const CHUNK = 1 << 20;

/**
 * Opens the repository at `root` for a command that writes to it: a version-1
 * repository is upgraded first (and the leftovers of an upgrade killed at its
 * very end removed). Returns the repository, and what the upgrade did if one ran.
 */
export async function openForWriting(
  root: string,
  options: WriteOpenOptions = {},
): Promise<{ repo: Repository; upgraded?: UpgradeSummary; composefs?: ComposefsUpgrade }> {
  const repo = await Repository.open(root, { ...options, legacy: true });
  if (repo.format.version === FORMAT_VERSION && !(await hasLeftovers(repo))) {
    return { repo, composefs: await composefsStep(repo, options) };
  }
  let upgraded: UpgradeSummary | undefined;
  try {
    upgraded = await upgradeRepository(repo, options.progress);
  } finally {
    await repo.close();
  }
  const current = await Repository.open(root, options);
  return { repo: current, upgraded, composefs: await composefsStep(current, options) };
}

/** The composefs images made again by the current rules where older ones made them (`composefs_upgrade.ts`). */
async function composefsStep(repo: Repository, options: WriteOpenOptions): Promise<ComposefsUpgrade | undefined> {
  try {
    return await upgradeComposefsImages(repo, options.progress);
  } catch (e) {
    await repo.close();
    throw e;
  }
}

/** True when the old object store is still there (an upgrade killed while removing it). */
async function hasLeftovers(repo: Repository): Promise<boolean> {
  return (await Deno.lstat(`${repo.objects.root}/${LEGACY_OBJECTS_DIR}`).catch(() => undefined)) !== undefined;
}

/**
 * Upgrades `repo` (opened with `legacy`) to format version 2 in place, under
 * the exclusive lock; see the module documentation for the order that makes it
 * crash-safe. Returns undefined when another process had upgraded it already.
 */
export async function upgradeRepository(
  repo: Repository,
  progress: ProgressSink = silentProgress,
): Promise<UpgradeSummary | undefined> {
  using _lock = await repo.lock(true);
  const format = await readFormat(repo.root);
  if (format.version === FORMAT_VERSION) {
    await removeLeftovers(repo);
    return undefined;
  }
  const started = performance.now();
  const upgrade = new Upgrade(repo, await probeVerity(repo.tempDir), progress);
  progress.start(PROGRESS_ID, "upgrade", await treeSize(`${repo.objects.root}/${LEGACY_OBJECTS_DIR}`));
  try {
    for (const fan of objectFans(repo.objects.root)) await Deno.mkdir(fan, { recursive: true });
    for await (const alg of Deno.readDir(`${repo.root}/layers`)) {
      if (!alg.isDirectory) continue;
      const dir = `${repo.root}/layers/${alg.name}`;
      // Listed first: records are renamed over and dropped as the upgrade goes.
      const names = [];
      // Whatever is not a directory: a symbolic link or FIFO where a record belongs is dropped like a damaged record.
      for await (const e of Deno.readDir(dir)) {
        if (!e.isDirectory && isDigest(`${alg.name}:${e.name}`)) names.push(e.name);
      }
      for (const name of names) await upgrade.record(`${dir}/${name}`, asDiffId(`${alg.name}:${name}`));
      upgrade.layerDirs.add(dir);
    }
    await repo.sync(...upgrade.layerDirs); // every rewritten record in place, durably
    const verity = upgrade.verity.enabled;
    await repo.writeAtomic(`${repo.root}/${FORMAT_FILE}`, encodeFormat({ version: FORMAT_VERSION, verity }));
    await repo.sync(repo.root);
    await removeLeftovers(repo);
    progress.finish(PROGRESS_ID, "upgraded");
    return { ...upgrade.counts, verity, seconds: (performance.now() - started) / 1000 };
  } finally {
    upgrade.verity.close();
  }
}

/** Removes the old object store, once the format file says version 2. */
async function removeLeftovers(repo: Repository): Promise<void> {
  await Deno.remove(`${repo.objects.root}/${LEGACY_OBJECTS_DIR}`, { recursive: true }).catch((e) => {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  });
  await repo.sync(repo.objects.root);
}

/** The new object names one record's rewrite made: their directories (for its barrier), and the links it added. */
interface NewNames {
  fans: Set<string>;
  linked: string[];
}

/**
 * Hard-links the old object `old` under its new name `path`, adding the link
 * to `made`. A link an earlier, interrupted run made is kept; anything else
 * there (a symbolic link put in its place) is replaced.
 */
async function link(old: string, path: string, made: NewNames): Promise<void> {
  try {
    await Deno.link(old, path);
  } catch (e) {
    if (!(e instanceof Deno.errors.AlreadyExists)) throw e;
    const [was, is] = await Promise.all([Deno.lstat(old), Deno.lstat(path)]);
    if (is.isFile && is.ino === was.ino && is.dev === was.dev) return;
    await Deno.remove(path);
    await Deno.link(old, path);
  }
  made.linked.push(path);
}

/** The state of one upgrade run. */
class Upgrade {
  readonly counts = { layers: 0, objects: 0, bytes: 0, dropped: [] as DiffId[] };
  readonly verity: ObjectVerity;
  /** Layer directories whose entries changed (for the barrier before the format file). */
  readonly layerDirs = new Set<string>();
  /** Old name → new name, or null for an object that is missing or damaged. */
  readonly #memo = new Map<string, string | null>();
  readonly #buffer = new Uint8Array(CHUNK);
  readonly #yielder = new Yielder();

  constructor(readonly repo: Repository, verity: boolean, readonly progress: ProgressSink) {
    this.verity = new ObjectVerity(verity, () => Promise.resolve()); // the format file is written at the end
  }

  /**
   * Rewrites one layer record (unless an interrupted run did) with its objects'
   * new names, or drops it when it cannot be carried over intact.
   */
  async record(path: string, diffId: DiffId): Promise<void> {
    let version;
    try {
      version = await recordVersion(path);
    } catch (e) {
      if (!(e instanceof DeltashipError)) throw e; // not a regular file: dropped below
    }
    if (version === 2) return; // rewritten by an earlier run that was interrupted
    const tmp = this.repo.tempPath();
    const writer = await LayerRecordWriter.create(tmp, this.repo.durability);
    const fans = new Set<string>();
    const linked: string[] = [];
    const items = readRecord(path, 1);
    let intact = version === 1;
    try {
      if (intact) intact = await this.#rewrite(items, writer, { fans, linked });
    } catch (e) {
      if (!(e instanceof DeltashipError) || e instanceof FileSystemError) {
        // A full disk fails the upgrade, leaving no new name that this record made.
        for (const p of linked) await Deno.remove(p).catch(() => {});
        throw e;
      }
      intact = false; // a record that does not parse (FormatError) is dropped
    } finally {
      writer.abort();
      await items.return(undefined as never); // closes the record (a no-op once it was read to its end)
    }
    if (!intact) {
      await Deno.remove(tmp).catch(() => {});
      await Deno.remove(path);
      this.counts.dropped.push(diffId);
      return;
    }
    await this.repo.sync(...fans); // the objects' new names and the new record's data, before it replaces the old
    await Deno.rename(tmp, path);
    this.counts.layers++;
  }

  /** Copies the items of an old record to `writer`, objects renamed; false when an object is missing or damaged. */
  async #rewrite(
    items: AsyncGenerator<RecordItem, RecordFooter>,
    writer: LayerRecordWriter,
    made: NewNames,
  ): Promise<boolean> {
    for (;;) {
      const next = await items.next();
      if (next.done) {
        await writer.finish(next.value);
        return true;
      }
      const item = next.value;
      if (item.type !== "object") {
        await writer.copy(item);
        continue;
      }
      const renamed = await this.#object(item.hex, item.size, made);
      if (renamed === null) return false;
      await writer.copy(item, fromHex(renamed));
    }
  }

  /**
   * The new name of the old object `sha` (of `size` bytes): read once, checked
   * against its old name and size, hard-linked under its fs-verity digest (with
   * fs-verity enabled where the repository gets it). Null when it is missing
   * or damaged. The new name is added to `made`.
   */
  async #object(sha: string, size: number, made: NewNames): Promise<string | null> {
    const known = this.#memo.get(sha);
    if (known !== undefined) return known;
    const old = `${this.repo.objects.root}/${LEGACY_OBJECTS_DIR}/${sha.slice(0, 2)}/${sha}`;
    const renamed = await this.#hash(old, sha, size);
    if (renamed !== null) {
      const path = objectPath(this.repo.objects.root, renamed);
      await link(old, path, made);
      await this.verity.seal(path, objectName(renamed));
      made.fans.add(path.slice(0, path.lastIndexOf("/")));
      this.counts.objects++;
      this.counts.bytes += size;
    }
    if (this.#memo.size >= MEMO_LIMIT) this.#memo.clear();
    this.#memo.set(sha, renamed);
    return renamed;
  }

  /**
   * The fs-verity digest (hex) of the file `path`, or null unless it is a
   * regular file (not a symbolic link, a FIFO, a device...) of `size` bytes that
   * hash to `sha`. No more than `size` bytes are read.
   */
  async #hash(path: string, sha: string, size: number): Promise<string | null> {
    let file: RepoFile;
    try {
      file = await RepoFile.open(path);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound || e instanceof RepositoryError) return null;
      throw e;
    }
    const verity = new FsVerityHasher();
    const sha256 = createHash("sha256");
    try {
      try {
        if (file.regularSize() !== size) return null;
      } catch (e) {
        if (e instanceof RepositoryError) return null;
        throw e;
      }
      while (verity.size <= size) { // one byte past `size` is enough to tell a file that grew
        const n = await file.read(this.#buffer.subarray(0, Math.min(CHUNK, size + 1 - verity.size)));
        if (n === null) break;
        const chunk = this.#buffer.subarray(0, n);
        verity.update(chunk);
        sha256.update(chunk);
        this.progress.advance(PROGRESS_ID, n);
        await this.#yielder.yieldIfDue();
      }
    } finally {
      file.close();
    }
    if (verity.size !== size || sha256.digest("hex") !== sha) return null;
    return toHex(verity.digest());
  }
}
