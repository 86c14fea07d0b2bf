/**
 * Garbage collection: removing what no tag reaches. The roots are the tags and
 * the images live mounts read (`mount_roots.ts`); an image no root names is
 * garbage together with its record, and so are the
 * manifests, configs, layers and objects (composefs images included) that only
 * unreachable images used, and the temporary directories of processes that are
 * gone.
 *
 * The caller holds the repository lock exclusively (pulls hold it shared), so
 * nothing is being added while the sweep runs.
 *
 * What gc cannot read it cannot prove unused (`docs/design.md`, "Damaged
 * records"): a damaged image record that a tag names keeps every manifest,
 * config, layer and object; a damaged layer record that a kept image names
 * keeps every object. Anything but a regular file where one belongs is named
 * and left in place (fsck says more).
 *
 * @module
 */
import { DeltashipError } from "../errors.ts";
import { type DiffId, type Digest, parseDigest } from "../util/digest.ts";
import { Yielder } from "../util/yielder.ts";
import { readRecord } from "./layer_record.ts";
import { liveMountRoots } from "./mount_roots.ts";
import { entryKind, notRegularProblem, problemOf } from "./repo_file.ts";
import type { ImageRecord, Repository } from "./repository.ts";
import type { MalformedTag } from "./tag_store.ts";
import { treeSize } from "../util/fs.ts";

/** How to collect. */
export interface GcOptions {
  /** Report what would be removed; remove nothing. */
  dryRun?: boolean;
}

/** Counts of what was (or would be) removed. */
export interface GcCounts {
  images: number;
  /** Manifests and configs. */
  blobs: number;
  layers: number;
  objects: number;
  /** Temporary directories of finished or killed processes. */
  tempDirs: number;
}

/** What a collection did. */
export interface GcResult {
  dryRun: boolean;
  removed: GcCounts;
  /** Bytes freed (or that would be), all kinds together. */
  bytes: number;
  /** Images kept (reached by a tag). */
  kept: number;
  /** Tag files that name nothing usable: they protect nothing (see `fsck`, `untag`). */
  malformedTags: MalformedTag[];
  /** Paths gc could not read or judge, left in place, and what it kept because of them. */
  problems: GcProblem[];
}

/** A repository path gc could not read or judge. */
export interface GcProblem {
  /** Its path in the repository (`images/sha256/<hex>.json`, `objects/ab/<62 hex>`, ...). */
  path: string;
  problem: string;
}

/** The regular files of `dir`; anything else there is added to `problems` (by its path under `rel`). */
async function* files(dir: string, rel: string, problems: GcProblem[]): AsyncGenerator<string> {
  try {
    for await (const e of Deno.readDir(dir)) {
      const kind = entryKind(`${dir}/${e.name}`, e);
      if (kind === undefined) yield e.name;
      else problems.push({ path: `${rel}/${e.name}`, problem: `${notRegularProblem(kind)}; left in place` });
    }
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
}

async function* subdirs(dir: string): AsyncGenerator<string> {
  try {
    for await (const e of Deno.readDir(dir)) if (e.isDirectory) yield e.name;
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
}

/**
 * Removes (or, dry, counts) what no tag reaches. The exclusive lock must be held.
 * Image records go first and are made durable before anything they name is
 * removed, so a power cut mid-gc never leaves a record naming something gone.
 */
export async function gc(repo: Repository, options: GcOptions = {}): Promise<GcResult> {
  const dryRun = options.dryRun === true;
  const removed: GcCounts = { images: 0, blobs: 0, layers: 0, objects: 0, tempDirs: 0 };
  let bytes = 0;
  const drop = async (path: string, kind: keyof GcCounts) => {
    bytes += await treeSize(path);
    removed[kind]++;
    if (!dryRun) await Deno.remove(path, { recursive: true });
  };

  // Mark: tags -> images -> manifests, configs, layers -> objects.
  const scan = await repo.tags.scan();
  const mounted = await liveMountRoots(repo, { dryRun }); // the images live mounts read are roots too
  const tagged = new Set([...scan.tags, ...mounted].map((t) => t.manifest));
  const keep: ImageRecord[] = [];
  const garbage: ImageRecord[] = [];
  const records = await repo.scanImages();
  for (const image of records.images) (tagged.has(image.manifest) ? keep : garbage).push(image);
  const problems: GcProblem[] = [];
  /** Damaged records no tag names: garbage like any untagged image, whatever they hold. */
  const damagedGarbage: string[] = [];
  /** A damaged record a tag names could name anything: then nothing it could name is removed. */
  let keepAll = false;
  for (const d of records.damaged) {
    if (d.manifest && !tagged.has(d.manifest)) damagedGarbage.push(d.path);
    else if (d.manifest) {
      keepAll = true;
      problems.push({
        path: d.path,
        problem: `${d.problem}; a tag names it, so no manifest, config, layer or object is removed`,
      });
    } else problems.push({ path: d.path, problem: `${d.problem}; left in place` });
  }
  let keepObjects = keepAll;
  const blobs = new Set<Digest>();
  const layers = new Set<DiffId>();
  const objects = new Set<string>();
  for (const image of [...keep, ...mounted]) {
    blobs.add(image.manifest);
    blobs.add(image.config);
    for (const l of image.layers) layers.add(l.diffId);
    if (image.composefs) objects.add(image.composefs); // its composefs image
  }
  const yielder = new Yielder({ every: 256 });
  for (const diffId of layers) {
    try {
      for await (const item of readRecord(repo.layerPath(diffId))) {
        if (item.type === "object") objects.add(item.hex);
        await yielder.yieldIfDue();
      }
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) continue; // a missing layer is fsck's business
      if (!(e instanceof DeltashipError)) throw e;
      keepObjects = true; // the objects it names are unknown
      const { algorithm, hex } = parseDigest(diffId);
      const problem = problemOf(e) ?? `cannot be read (${e.message})`;
      problems.push({ path: `layers/${algorithm}/${hex}`, problem: `${problem}; so no object is removed` });
    }
  }

  // Sweep: image records first, so that no record ever names something already gone.
  const imageDirs = new Set<string>();
  const garbagePaths = garbage.map((image) => {
    const { algorithm, hex } = parseDigest(image.manifest);
    return `images/${algorithm}/${hex}.json`;
  });
  for (const path of [...garbagePaths, ...damagedGarbage]) {
    imageDirs.add(`${repo.root}/${path.slice(0, path.lastIndexOf("/"))}`);
    await drop(`${repo.root}/${path}`, "images");
  }
  if (!dryRun && imageDirs.size) await repo.sync(...imageDirs);
  const kept: [keyof GcCounts, string, ReadonlySet<string>][] = [["blobs", "blobs", blobs], [
    "layers",
    "layers",
    layers,
  ]];
  for (const [kind, base, keepSet] of kept) {
    for await (const alg of subdirs(`${repo.root}/${base}`)) {
      for await (const name of files(`${repo.root}/${base}/${alg}`, `${base}/${alg}`, problems)) {
        if (!keepAll && !keepSet.has(`${alg}:${name}`)) await drop(`${repo.root}/${base}/${alg}/${name}`, kind);
      }
    }
  }
  // Content indexes (content_index.ts) go with their layers; they are not counted.
  for await (const alg of subdirs(`${repo.root}/content-index`)) {
    for await (const name of files(`${repo.root}/content-index/${alg}`, `content-index/${alg}`, problems)) {
      const path = `${repo.root}/content-index/${alg}/${name}`;
      if (!keepAll && !layers.has(`${alg}:${name}` as DiffId)) {
        bytes += await treeSize(path);
        if (!dryRun) await Deno.remove(path);
      }
    }
  }
  for await (const fan of subdirs(`${repo.root}/objects`)) {
    if (!/^[0-9a-f]{2}$/.test(fan)) continue; // not an object directory (fsck reports it)
    for await (const name of files(`${repo.root}/objects/${fan}`, `objects/${fan}`, problems)) {
      if (!keepObjects && !objects.has(fan + name)) await drop(`${repo.root}/objects/${fan}/${name}`, "objects");
    }
  }
  const temp = await repo.temp.sweep(dryRun);
  removed.tempDirs = temp.dirs;
  bytes += temp.bytes;
  if (!dryRun) await repo.sync(); // what was removed stays removed
  return { dryRun, removed, bytes, kept: keep.length, malformedTags: scan.malformed, problems };
}
