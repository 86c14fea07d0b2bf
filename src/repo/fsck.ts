/**
 * Checking a repository: every object re-hashed to its fs-verity digest (and,
 * where the repository records fs-verity on its objects, the kernel's own
 * measurement compared), every layer rebuilt and hashed against its diff_id,
 * every manifest and config re-hashed, and every reference (tag → image →
 * manifest, config, layers → objects; image → composefs image) followed, each
 * image's composefs image rebuilt and compared.
 *
 * @module
 */
import { FsVerityHasher } from "../composefs/fsverity.ts";
import { NotFoundError } from "../errors.ts";
import { parseImageConfig, parseManifest } from "../oci/documents.ts";
import {
  asDiffId,
  type DiffId,
  type Digest,
  Hasher,
  isDigest,
  type ManifestDigest,
  parseDigest,
  toHex,
} from "../util/digest.ts";
import { type FsVerity, openFsVerity } from "../util/posix.ts";
import { Yielder } from "../util/yielder.ts";
import { LEGACY_OBJECTS_DIR } from "./format.ts";
import { composefsId } from "./composefs_image.ts";
import { COMPOSEFS_RULES, composefsRules } from "./composefs_upgrade.ts";
import { readRecord } from "./layer_record.ts";
import { objectName } from "./objects.ts";
import { type ImageScan, scanImageRecord } from "./image_record.ts";
import { problemOf, RepoFile } from "./repo_file.ts";
import type { ImageRecord, Repository } from "./repository.ts";

/** One thing found wrong. */
export interface Problem {
  /** What is at fault: `object sha256:...`, `layer sha256:...`, `image @sha256:...`, `tag NAME`. */
  subject: string;
  message: string;
}

/** The outcome of a check. */
export interface FsckReport {
  problems: Problem[];
  checked: { images: number; layers: number; objects: number; blobs: number; tags: number };
}

const CHUNK = 1 << 20;

class Checker {
  problems: Problem[] = [];
  verifiedObjects = new Set<string>();
  badObjects = new Set<string>();
  checkedLayers = new Map<DiffId, boolean>();
  checkedBlobs = new Set<Digest>();
  /** The kernel's fs-verity, asked when the repository records it on every object. */
  verity: FsVerity | undefined;
  readonly #buffer = new Uint8Array(CHUNK);

  constructor(readonly repo: Repository) {
    if (repo.format.verity) this.verity = openFsVerity();
  }

  report(subject: string, message: string): void {
    this.problems.push({ subject, message });
  }

  /**
   * What a failure to read a repository file says: a file that is not as it must
   * be (a symbolic link, a directory...) by its path in the repository and the
   * problem, anything else by its message.
   */
  describe(e: unknown): string {
    const problem = problemOf(e);
    if (problem === undefined) return (e as Error).message;
    const path = (e as { path: string }).path;
    return `${path.startsWith(`${this.repo.root}/`) ? path.slice(this.repo.root.length + 1) : path} ${problem}`;
  }

  /**
   * The entries of the directory `rel` of the repository, sorted by name; a
   * directory that cannot be listed is reported (naming it) and lists nothing.
   */
  async entries(rel: string): Promise<Deno.DirEntry[]> {
    try {
      const out = await Array.fromAsync(Deno.readDir(`${this.repo.root}/${rel}`));
      return out.sort((a, b) => a.name.localeCompare(b.name));
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return [];
      this.report(rel, e instanceof Deno.errors.NotADirectory ? "is not a directory" : (e as Error).message);
      return [];
    }
  }

  /** Verifies an object found in `objects/` (no layer asking for a size). */
  async object(hex: string): Promise<boolean> {
    if (this.verifiedObjects.has(hex)) return true;
    if (this.badObjects.has(hex)) return false;
    return await this.#verify(hex);
  }

  /** Replays a layer record, hashing the tar it rebuilds and each object it reads. */
  async layer(diffId: DiffId): Promise<boolean> {
    const known = this.checkedLayers.get(diffId);
    if (known !== undefined) return known;
    const subject = `layer ${diffId}`;
    let ok = true;
    try {
      const tar = new Hasher(parseDigest(diffId).algorithm);
      const records = readRecord(this.repo.layerPath(diffId));
      const zeros = new Uint8Array(CHUNK);
      const yielder = new Yielder({ every: 16 }); // zero runs and small items involve no I/O
      for (;;) {
        await yielder.yieldIfDue();
        const next = await records.next();
        if (next.done) {
          if (next.value.tarSize !== tar.size) {
            this.report(subject, `footer says ${next.value.tarSize} bytes, record rebuilds ${tar.size}`);
            ok = false;
          }
          break;
        }
        const item = next.value;
        if (item.type === "header" || item.type === "raw") tar.update(item.bytes);
        else if (item.type === "zero") {
          for (let left = item.length; left > 0; left -= CHUNK) {
            tar.update(zeros.subarray(0, Math.min(CHUNK, left)));
            await yielder.yieldIfDue();
          }
        } else {
          if (!(await this.objectInto(item.hex, item.size, tar))) ok = false;
        }
      }
      const actual = tar.digest();
      if (ok && actual !== diffId) {
        this.report(subject, `rebuilds to ${actual}`);
        ok = false;
      }
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) this.report(subject, "is missing");
      else this.report(subject, this.describe(e));
      ok = false;
    }
    this.checkedLayers.set(diffId, ok);
    return ok;
  }

  /**
   * Feeds an object's first `size` bytes into a layer hash, verifying the object
   * itself (once per run) in the same read.
   */
  async objectInto(hex: string, size: number, tar: Hasher): Promise<boolean> {
    if (this.badObjects.has(hex)) return false;
    return await this.#verify(hex, { size, tar });
  }

  /**
   * Reads an object once: its fs-verity digest checked against its name (unless
   * verified already), the kernel's measurement compared where the repository
   * records fs-verity, its size against the layer's, and its bytes fed to the
   * layer's hash. Reports and returns false on any fault.
   */
  async #verify(hex: string, layer?: { size: number; tar: Hasher }): Promise<boolean> {
    const subject = objectName(hex);
    const path = this.repo.objects.path(hex);
    const own = this.verifiedObjects.has(hex) ? undefined : new FsVerityHasher();
    let n = 0;
    let file: RepoFile | undefined;
    try {
      file = await RepoFile.open(path);
      file.regularSize(); // a regular file, so reading it ends
      const buf = this.#buffer;
      for (;;) {
        const r = await file.read(buf);
        if (r === null) break;
        const chunk = buf.subarray(0, r);
        own?.update(chunk);
        if (layer && n < layer.size) layer.tar.update(r <= layer.size - n ? chunk : chunk.subarray(0, layer.size - n));
        n += r;
      }
    } catch (e) {
      this.report(subject, e instanceof Deno.errors.NotFound ? "is missing" : this.describe(e));
      this.badObjects.add(hex);
      return false;
    } finally {
      file?.close();
    }
    if (own) {
      const actual = own.hexDigest();
      if (actual !== hex) {
        this.report(subject, `content's fs-verity digest is ${actual}`);
        this.badObjects.add(hex);
        return false;
      }
      if (!this.#kernelAgrees(hex, path)) {
        this.badObjects.add(hex);
        return false;
      }
      this.verifiedObjects.add(hex);
    }
    if (layer && n !== layer.size) {
      this.report(subject, `is ${n} bytes, layer record says ${layer.size}`);
      return false;
    }
    return true;
  }

  /**
   * Where the repository records fs-verity on every object, the kernel's
   * measurement of the object must be its name; elsewhere there is nothing to ask.
   */
  #kernelAgrees(hex: string, path: string): boolean {
    if (!this.verity) return true;
    const measured = this.verity.measure(path);
    if (measured === "unsupported") {
      this.report("repository", "records fs-verity on its objects, but its filesystem has no fs-verity");
      this.verity.close();
      this.verity = undefined;
      return true;
    }
    if (measured === "none") {
      this.report(objectName(hex), "has no fs-verity, though the repository records it on every object");
      return false;
    }
    if (toHex(measured) !== hex) {
      this.report(objectName(hex), `the kernel measures its fs-verity digest as ${toHex(measured)}`);
      return false;
    }
    return true;
  }

  async blob(digest: Digest): Promise<Uint8Array | undefined> {
    const subject = `blob ${digest}`;
    try {
      const bytes = await this.repo.readBlob(digest);
      if (!this.checkedBlobs.has(digest)) {
        const h = new Hasher(parseDigest(digest).algorithm);
        h.update(bytes);
        const actual = h.digest();
        if (actual !== digest) {
          this.report(subject, `content hashes to ${actual}`);
          return undefined;
        }
        this.checkedBlobs.add(digest);
      }
      return bytes;
    } catch (e) {
      this.report(subject, e instanceof NotFoundError ? "is missing" : this.describe(e));
      return undefined;
    }
  }

  async image(record: ImageRecord): Promise<void> {
    const subject = `image @${record.manifest}`;
    const manifestBytes = await this.blob(record.manifest);
    const configBytes = await this.blob(record.config);
    if (manifestBytes && configBytes) {
      try {
        const manifest = parseManifest(manifestBytes, `manifest ${record.manifest}`);
        const config = parseImageConfig(configBytes, `config ${record.config}`);
        if (manifest.config.digest !== record.config) {
          this.report(subject, `manifest names config ${manifest.config.digest}, record says ${record.config}`);
        }
        const diffIds = config.rootfs.diff_ids;
        if (diffIds.length !== manifest.layers.length) {
          this.report(subject, `manifest has ${manifest.layers.length} layers, config ${diffIds.length} diff_ids`);
        }
        if (diffIds.join() !== record.layers.map((l) => l.diffId).join()) {
          this.report(subject, "record's layers differ from the config's diff_ids");
        }
      } catch (e) {
        this.report(subject, (e as Error).message);
      }
    }
    let layersOk = true;
    for (const { diffId } of record.layers) {
      if (!(await this.layer(diffId))) {
        this.report(subject, `layer ${diffId} is missing or damaged`);
        layersOk = false;
      }
    }
    if (record.composefs) await this.composefs(record, layersOk);
  }

  /**
   * The image's composefs image: its object present and intact, and (when the
   * layers are) the image rebuilt from the layers hashing to the same digest.
   */
  async composefs(record: ImageRecord, layersOk: boolean): Promise<void> {
    const subject = `image @${record.manifest}`;
    const id = record.composefs!;
    if (!(await this.object(id))) return this.report(subject, `composefs image ${id} is missing or damaged`);
    if (!layersOk) return;
    try {
      const rebuilt = await composefsId(this.repo, record.layers.map((l) => l.diffId));
      if (rebuilt !== id) {
        const older = (await composefsRules(this.repo)) < COMPOSEFS_RULES
          ? " by the current rules (it was made by older ones: run 'deltaship upgrade')"
          : "";
        this.report(subject, `composefs image ${id} differs from the one rebuilt${older}, ${rebuilt}`);
      }
    } catch (e) {
      this.report(subject, `composefs image cannot be rebuilt: ${(e as Error).message}`);
    }
  }
}

/** The record of the image `manifest`, usable or damaged; a NotFoundError when it is not stored. */
async function oneImage(repo: Repository, manifest: ManifestDigest): Promise<ImageScan> {
  try {
    return await scanImageRecord(repo.root, manifest);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) throw new NotFoundError(`image @${manifest} is not in the repository`);
    throw e;
  }
}

/** Verifies every file under `objects/`: each must be `XX/<62 hex>` and hold what its name says. */
async function scanObjects(c: Checker): Promise<void> {
  for (const fan of await c.entries("objects")) {
    if (fan.name === LEGACY_OBJECTS_DIR && fan.isDirectory) continue;
    if (!fan.isDirectory || !/^[0-9a-f]{2}$/.test(fan.name)) {
      c.report(`objects/${fan.name}`, "is not an object directory (objects/XX/<62 hex digits>)");
      continue;
    }
    for (const e of await c.entries(`objects/${fan.name}`)) {
      if (!/^[0-9a-f]{62}$/.test(e.name)) {
        c.report(`objects/${fan.name}/${e.name}`, "is not named by an fs-verity digest");
        continue;
      }
      await c.object(fan.name + e.name);
    }
  }
}

/**
 * Checks the whole repository, or only what the image of manifest `image`
 * needs (its record first). Reads everything it checks; changes nothing.
 */
export async function fsck(repo: Repository, image?: ManifestDigest): Promise<FsckReport> {
  const c = new Checker(repo);
  const { images, damaged } = image ? await oneImage(repo, image) : await repo.scanImages();
  for (const d of damaged) {
    c.report(d.path, `${d.problem}${d.manifest ? `; remove it with: deltaship rm @${d.manifest}` : ""}`);
  }
  let tags = 0;
  if (!image) {
    const imageSet = new Set([...images, ...damaged].map((i) => i.manifest));
    const scan = await repo.tags.scan();
    for (const m of scan.malformed) {
      tags++;
      c.report(`tag ${m.name ?? `file ${m.file}`}`, `is malformed: ${m.problem}; remove it with deltaship untag`);
    }
    for (const tag of scan.tags) {
      tags++;
      if (!imageSet.has(tag.manifest)) c.report(`tag ${tag.name}`, `names ${tag.manifest}, which is not stored`);
    }
  }
  for (const record of images) await c.image(record);
  if (!image) {
    for (const alg of await c.entries("layers")) {
      for (const e of await c.entries(`layers/${alg.name}`)) {
        const name = `${alg.name}:${e.name}`;
        if (isDigest(name)) await c.layer(asDiffId(name));
        else c.report(`layers/${alg.name}/${e.name}`, "is not named by a digest");
      }
    }
    for (const alg of await c.entries("blobs")) {
      for (const e of await c.entries(`blobs/${alg.name}`)) {
        const name = `${alg.name}:${e.name}`;
        if (isDigest(name)) await c.blob(name);
        else c.report(`blobs/${alg.name}/${e.name}`, "is not named by a digest");
      }
    }
    await scanObjects(c);
  }
  c.verity?.close();
  return {
    problems: c.problems,
    checked: {
      images: images.length,
      layers: c.checkedLayers.size,
      objects: c.verifiedObjects.size + c.badObjects.size,
      blobs: c.checkedBlobs.size,
      tags,
    },
  };
}
