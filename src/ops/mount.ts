/**
 * Mounting a stored image in place, as composefs does: its composefs EROFS
 * image mounted (detached, never visible: the new mount API), then overlayfs at
 * the target with that mount as its only lower layer and the repository's
 * `objects/` as a data-only lower layer (`metacopy=on`, `redirect_dir=on`),
 * read-only, with `verity=require` when the objects have fs-verity. The kernel
 * reads each file's bytes from the object its metacopy stub names; the page
 * cache is shared by every image that has the object.
 *
 * Each mount is recorded in the repository as a root (`repo/mount_roots.ts`),
 * so gc keeps what it reads until `umount`; the overlay's source,
 * `deltaship:<composefs id>`, marks it as deltaship's, and `umount` refuses any
 * other mount.
 *
 * @module
 */
import { FileSystemError, InvalidArgumentError, NotFoundError, RepositoryError, UnsupportedError } from "../errors.ts";
import { fsverityHex } from "../composefs/fsverity.ts";
import { composefsImage, DEFAULT_XATTRS, type XattrFiltering } from "../repo/composefs_image.ts";
import { COMPOSEFS_RULES, composefsRules } from "../repo/composefs_upgrade.ts";
import { addMountRoot, isDeltashipSource, mountSource, removeMountRoot, removeRootFile } from "../repo/mount_roots.ts";
import { readRepoFile } from "../repo/repo_file.ts";
import type { ImageRecord, Repository } from "../repo/repository.ts";
import { type MountApi, openMountApi, readMountTable, topMountAt } from "../util/mount.ts";
import { openFsVerity, PosixError } from "../util/posix.ts";
import { toHex } from "../util/digest.ts";

/**
 * What fs-verity a mount asks of the objects: `require` (the kernel refuses any
 * object without it or whose digest is not the one the image names; refused
 * when the repository's objects have none), `auto` (require it when the objects
 * have it), `off` (never asked).
 */
export type VerityMode = "require" | "auto" | "off";

/** What a mount did. */
export interface MountResult {
  target: string;
  /** The composefs id (fs-verity digest, hex) of the image mounted. */
  id: string;
  /** The overlay was mounted with `verity=require`. */
  verity: boolean;
  /** How the EROFS image was mounted: the file itself, or a loop device on it (older kernels). */
  erofsSource: "file" | "loop";
}

const ENOTBLK = 15;
const EBUSY = 16;
const EINVAL = 22;

function needMountApi(command: "mount" | "umount"): MountApi {
  if (Deno.build.os !== "linux") {
    throw new UnsupportedError(`${command} works only on Linux (composefs mounts are EROFS and overlayfs)`);
  }
  if (Deno.uid() !== 0) {
    throw new UnsupportedError(`${command} needs root (composefs mounts are EROFS and overlayfs); run it as root`);
  }
  const api = openMountApi();
  if (!api) throw new UnsupportedError(`${command} needs the C library's mount calls (FFI permission, glibc 2.36+)`);
  return api;
}

async function checkTarget(target: string): Promise<void> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(target);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new NotFoundError(`${target} does not exist; create an empty directory to mount on`);
    }
    throw e;
  }
  if (!info.isDirectory) throw new InvalidArgumentError(`${target} is not a directory`);
  // Something mounted there shows its own files: say what it is rather than "not empty".
  const top = topMountAt(readMountTable()?.mounts ?? [], await Deno.realPath(target));
  if (top) {
    const ours = top.fsType === "overlay" && isDeltashipSource(top.source);
    throw new FileSystemError(
      `${target} is already a mount point (${
        ours ? "an image deltaship mount mounted; deltaship umount unmounts it" : `a ${top.fsType} mount`
      }); mount on an empty directory that is not one`,
      target,
      "EBUSY",
    );
  }
  for await (const _ of Deno.readDir(target)) {
    throw new InvalidArgumentError(`${target} is not empty; mount on an empty directory`);
  }
}

/** Largest stored composefs image read (whole, to check it; never through a symbolic link: see repo_file.ts). */
const MAX_IMAGE_FILE = 1 << 30;

/**
 * The image's EROFS file: its stored object (checked against its digest), or a
 * fresh temporary one (for other xattrs than the stored one's, or where the
 * stored one follows older rules and the repository is still to be upgraded).
 */
async function imageFile(
  repo: Repository,
  record: ImageRecord,
  verity: boolean,
  xattrs: XattrFiltering,
): Promise<{ path: string; id: string }> {
  if (record.composefs && xattrs === DEFAULT_XATTRS && (await composefsRules(repo)) >= COMPOSEFS_RULES) {
    const path = repo.objects.path(record.composefs);
    const bytes = await readRepoFile(path, MAX_IMAGE_FILE).catch((e) => {
      if (e instanceof Deno.errors.NotFound) return undefined;
      throw e;
    });
    if (bytes) {
      if (fsverityHex(bytes) !== record.composefs) {
        throw new RepositoryError(
          `the composefs image ${record.composefs} of @${record.manifest} is damaged; run deltaship fsck`,
        );
      }
      if (verity) checkKernelMeasure(path, record.composefs);
      return { path, id: record.composefs };
    }
  }
  // A record made before composefs images were, or an image lost: made now, in the temporary area.
  const image = await composefsImage(repo, record.layers.map((l) => l.diffId), { xattrs });
  const path = repo.tempPath();
  await Deno.writeFile(path, image.bytes);
  return { path, id: image.id };
}

function checkKernelMeasure(path: string, id: string): void {
  const fv = openFsVerity();
  try {
    const m = fv?.measure(path);
    if (m instanceof Uint8Array && toHex(m) === id) return;
    throw new RepositoryError(`the composefs image ${id} has no fs-verity, or not its own; run deltaship fsck`);
  } finally {
    fv?.close();
  }
}

/** Mounts the EROFS image at `path`, detached: the mount's descriptor. */
function mountErofs(api: MountApi, path: string): { mfd: number; source: "file" | "loop" } {
  const attempt = (source: string) => {
    const fd = api.fsopen("erofs");
    try {
      api.set(fd, "source", source);
      api.set(fd, "ro");
      return api.create(fd, "EROFS");
    } finally {
      api.closeFd(fd);
    }
  };
  try {
    return { mfd: attempt(path), source: "file" };
  } catch (e) {
    if (!(e instanceof PosixError) || (e.errno !== ENOTBLK && e.errno !== EINVAL)) throw e;
  }
  const loop = api.loopDevice(path); // this kernel's EROFS mounts only block devices
  try {
    return { mfd: attempt(loop.path), source: "loop" };
  } finally {
    api.closeFd(loop.fd);
  }
}

/** Mounts the overlay of `meta` (a detached mount's descriptor) over `objects` at `target`, with `source`. */
function mountOverlay(
  api: MountApi,
  meta: number,
  objects: string,
  target: string,
  verity: boolean,
  source: string,
): void {
  const fd = api.fsopen("overlay");
  try {
    api.set(fd, "source", source);
    try {
      api.set(fd, "lowerdir+", `/proc/self/fd/${meta}`);
      api.set(fd, "datadir+", objects);
    } catch (e) {
      if (!(e instanceof PosixError) || e.errno !== EINVAL) throw e;
      api.set(fd, "lowerdir", `/proc/self/fd/${meta}::${objects}`); // kernels before 6.8
    }
    api.set(fd, "metacopy", "on");
    api.set(fd, "redirect_dir", "on");
    if (verity) api.set(fd, "verity", "require");
    const mfd = api.create(fd, "overlay");
    try {
      api.attach(mfd, target);
    } finally {
      api.closeFd(mfd);
    }
  } finally {
    api.closeFd(fd);
  }
}

/** Mounts `record`'s image (its tree keeping `xattrs`) read-only at `target` (an empty directory). Needs root. */
export async function mountImage(
  repo: Repository,
  record: ImageRecord,
  target: string,
  mode: VerityMode,
  xattrs: XattrFiltering = DEFAULT_XATTRS,
): Promise<MountResult> {
  const api = needMountApi("mount");
  try {
    await checkTarget(target);
    if (mode === "require" && !repo.format.verity) {
      throw new UnsupportedError(
        "--verity require: the repository's objects have no fs-verity (its filesystem has none); use --verity auto or off",
      );
    }
    const verity = mode === "require" || (mode === "auto" && repo.format.verity);
    const image = await imageFile(repo, record, verity, xattrs);
    try {
      const source = mountSource(image.id);
      const root = await addMountRoot(repo, {
        target: await Deno.realPath(target),
        source,
        namespace: readMountTable()?.namespace,
        image: { ...record, composefs: image.id },
      });
      try {
        const erofs = mountErofs(api, image.path);
        try {
          mountOverlay(api, erofs.mfd, repo.objects.root, target, verity, source);
        } finally {
          api.closeFd(erofs.mfd); // the overlay holds the EROFS mount now; nothing else does
        }
        return { target, id: image.id, verity, erofsSource: erofs.source };
      } catch (e) {
        await removeRootFile(root);
        throw e;
      }
    } finally {
      if (image.path.startsWith(repo.temp.root)) await Deno.remove(image.path).catch(() => {});
    }
  } catch (e) {
    if (e instanceof PosixError) throw new UnsupportedError(`mount ${target}: ${e.message}`, { cause: e });
    throw e;
  } finally {
    api.close();
  }
}

/** What an unmount did. */
export interface UnmountResult {
  target: string;
  /** The repository held the mount's root (false: it was made with another repository, whose gc drops it). */
  rootRemoved: boolean;
}

/**
 * Unmounts what {@link mountImage} mounted at `target` (the overlay; the EROFS
 * mount goes with it) and removes its root from the repository at `repoRoot`.
 * Anything else mounted there is refused, and a mount in use is left mounted,
 * with what to do.
 */
export async function unmountImage(repoRoot: string, target: string): Promise<UnmountResult> {
  // What is at the target is told first (no root needed): a directory that is not a mount point says so to anyone.
  const path = await Deno.realPath(target).catch((e) => {
    if (e instanceof Deno.errors.NotFound) throw new NotFoundError(`${target} does not exist`);
    throw e;
  });
  const table = readMountTable();
  if (!table) throw new UnsupportedError("umount needs to read /proc/self/mountinfo (FFI permission, /proc mounted)");
  const top = topMountAt(table.mounts, path);
  if (!top) throw new NotFoundError(`${target} is not a mount point`);
  if (top.fsType !== "overlay" || !isDeltashipSource(top.source)) {
    throw new NotFoundError(
      `${target} holds a ${top.fsType} mount (source ${JSON.stringify(top.source)}) that deltaship mount did not ` +
        "make; deltaship umount leaves it alone (umount(8) unmounts anything)",
    );
  }
  const api = needMountApi("umount");
  try {
    try {
      api.unmount(path);
    } catch (e) {
      if (e instanceof PosixError && e.errno === EBUSY) {
        throw new FileSystemError(
          `${target} is busy: a process has a file open or its working directory under it; stop it ` +
            `(fuser -vm ${target} lists them), then run deltaship umount again`,
          target,
          "EBUSY",
          { cause: e },
        );
      }
      if (e instanceof PosixError && e.errno === EINVAL) throw new NotFoundError(`${target} is not a mount point`);
      if (e instanceof PosixError) throw new UnsupportedError(`umount ${target}: ${e.message}`, { cause: e });
      throw e;
    }
    return { target, rootRemoved: await removeMountRoot(repoRoot, path, top.source) };
  } finally {
    api.close();
  }
}
