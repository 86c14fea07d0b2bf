/**
 * Mount roots: what `deltaship mount` records in the repository so that gc
 * keeps what a mounted image reads (its layers' objects, its composefs image)
 * while the mount lives, even once no tag names the image (`rm` + `gc`). One
 * file per mount, `mounts/<32 hex>.json`, written before the mount is made and
 * removed by `umount`; a root whose mount is gone (unmounted by other means, a
 * reboot) is stale, and the next gc drops it.
 *
 * A mount is told from others by its source: the overlay is made with
 * `source=deltaship:<composefs id>` (what `findmnt` shows), and a root is live
 * while `/proc/self/mountinfo` lists an overlay with that source at its mount
 * point. A root made in another mount namespace cannot be judged from this one,
 * nor any root where the mount table cannot be read: those are kept.
 *
 * @module
 */
import { isDigest } from "../util/digest.ts";
import { type MountTable, readMountTable } from "../util/mount.ts";
import type { ImageRecord, Repository } from "./repository.ts";

/** What one `deltaship mount` recorded. */
export interface MountRoot {
  /** The mount point, absolute and with symlinks resolved, as the mount table shows it. */
  target: string;
  /** The overlay's source, {@link mountSource} of the composefs id mounted. */
  source: string;
  /** The mount namespace it was made in (`mnt:[INODE]`), when known. */
  namespace?: string;
  /** The image mounted, as its record was then: what gc keeps for it. */
  image: ImageRecord;
}

/** A root as found in the repository: its file, and the root unless the file does not hold one. */
interface RootFile {
  path: string;
  root?: MountRoot;
}

/** Largest root file read (a root lists an image's layers: a few KiB). */
const MAX_ROOT_FILE = 1 << 20;

/** The overlay source that marks a mount of composefs image `id` as deltaship's. */
export function mountSource(id: string): string {
  return `deltaship:${id}`;
}

/** True for a source {@link mountSource} made. */
export function isDeltashipSource(source: string): boolean {
  return /^deltaship:[0-9a-f]{64}$/.test(source);
}

function rootsDir(repoRoot: string): string {
  return `${repoRoot}/mounts`;
}

/**
 * Records `root` in the repository (before the mount is made, so a mount never
 * exists unprotected); returns the file, to remove if mounting fails. The
 * caller holds the repository lock, shared: gc cannot run meanwhile.
 */
export async function addMountRoot(repo: Repository, root: MountRoot): Promise<string> {
  const dir = rootsDir(repo.root);
  await Deno.mkdir(dir, { recursive: true });
  const id = crypto.randomUUID().replaceAll("-", "");
  const path = `${dir}/${id}.json`;
  await repo.writeAtomic(path, new TextEncoder().encode(JSON.stringify(root)));
  return path;
}

/** Removes a root file (gone already is fine). */
export async function removeRootFile(path: string): Promise<void> {
  await Deno.remove(path).catch((e) => {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  });
}

function checkRoot(v: unknown): MountRoot | undefined {
  const r = v as Partial<MountRoot> | null;
  const image = r?.image as Partial<ImageRecord> | undefined;
  const ok = typeof r?.target === "string" && r.target.startsWith("/") && typeof r.source === "string" &&
    isDeltashipSource(r.source) && (r.namespace === undefined || typeof r.namespace === "string") &&
    typeof image?.manifest === "string" && isDigest(image.manifest) && typeof image.config === "string" &&
    isDigest(image.config) && Array.isArray(image.layers) &&
    image.layers.every((l) => typeof l?.diffId === "string" && isDigest(l.diffId)) &&
    (image.composefs === undefined || (typeof image.composefs === "string" && /^[0-9a-f]{64}$/.test(image.composefs)));
  return ok ? r as MountRoot : undefined;
}

/** Every root file of the repository at `repoRoot`, each with its root unless it does not hold a valid one. */
async function rootFiles(repoRoot: string): Promise<RootFile[]> {
  const out: RootFile[] = [];
  try {
    for await (const e of Deno.readDir(rootsDir(repoRoot))) {
      if (!e.name.endsWith(".json")) continue;
      const path = `${rootsDir(repoRoot)}/${e.name}`;
      let root: MountRoot | undefined;
      try {
        const info = await Deno.lstat(path);
        if (info.isFile && info.size <= MAX_ROOT_FILE) root = checkRoot(JSON.parse(await Deno.readTextFile(path)));
      } catch (err) {
        if (err instanceof Deno.errors.NotFound) continue; // removed meanwhile (an umount)
        if (!(err instanceof SyntaxError)) throw err;
      }
      out.push({ path, root });
    }
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  return out;
}

/** Whether `root`'s mount is there: true, false, or undefined when this process cannot tell. */
function isLive(root: MountRoot, table: MountTable | undefined): boolean | undefined {
  if (!table || (root.namespace !== undefined && root.namespace !== table.namespace)) return undefined;
  return table.mounts.some((m) => m.mountPoint === root.target && m.fsType === "overlay" && m.source === root.source);
}

/**
 * The images live mounts read, for gc (under the exclusive lock): the roots
 * whose mount is there, or cannot be judged from here. Stale roots, and files
 * that hold no root (they can protect nothing), are removed unless `dryRun`.
 */
export async function liveMountRoots(repo: Repository, options: { dryRun?: boolean } = {}): Promise<ImageRecord[]> {
  const files = await rootFiles(repo.root);
  const table = files.length ? readMountTable() : undefined;
  const live: ImageRecord[] = [];
  for (const { path, root } of files) {
    if (root && isLive(root, table) !== false) live.push(root.image);
    else if (!options.dryRun) await removeRootFile(path);
  }
  return live;
}

/** The mount points where the image with manifest `manifest` is mounted (live roots naming it). */
export async function mountedAt(repo: Repository, manifest: string): Promise<string[]> {
  const files = (await rootFiles(repo.root)).filter((f) => f.root?.image.manifest === manifest);
  const table = files.length ? readMountTable() : undefined;
  return files.filter((f) => isLive(f.root!, table) !== false).map((f) => f.root!.target);
}

/**
 * Removes the root of the mount of `source` at `target` that `umount` just
 * unmounted, from the repository at `repoRoot` (one root: the same image may
 * still be mounted there beneath it). False when this repository has none (the
 * mount was made with another one, whose next gc drops it).
 */
export async function removeMountRoot(repoRoot: string, target: string, source: string): Promise<boolean> {
  const file = (await rootFiles(repoRoot)).find((f) => f.root?.target === target && f.root.source === source);
  if (!file) return false;
  await removeRootFile(file.path);
  return true;
}
