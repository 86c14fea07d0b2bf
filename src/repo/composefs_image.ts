/**
 * The composefs image of a stored OCI image: its merged tree built the way
 * composefs-rs builds it (`crates/composefs-oci/src/image.rs` and `tar.rs`,
 * `transform_for_oci` in `crates/composefs/src/generic_tree.rs`), written as a
 * composefs EROFS image (`composefs/erofs_writer.ts`), and kept in the object
 * store under its fs-verity digest: the image's composefs id, what
 * `cfsctl --hash sha256 oci compute-id` prints.
 *
 * The rules (docs/design.md lists them with their sources):
 * - layers applied bottom first, whiteouts and opaque markers as `oci/rootfs.ts`
 *   applies them; hardlinks stay one inode; metadata from each path's topmost entry;
 * - owner, permission bits (`mode & 0o7777`), whole-second mtime (composefs-rs
 *   sets `st_mtim_nsec` 0) and `SCHILY.xattr.*` xattrs from the tar headers;
 * - regular files of at most 64 bytes inline, larger ones external, named by the
 *   object that holds them;
 * - the root directory takes `/usr`'s mode, owner, mtime and xattrs, and `/run`
 *   is emptied and takes `/usr`'s mtime. An image without `/usr` (composefs-rs
 *   refuses it) keeps the root's own metadata and `/run`'s mtime.
 *
 * @module
 */
import { FormatError, RepositoryError, withContext } from "../errors.ts";
import { fsverityHex } from "../composefs/fsverity.ts";
import {
  device,
  Directory,
  externalFile,
  fifo,
  INLINE_CONTENT_MAX,
  inlineFile,
  type Inode,
  type Leaf,
  type Meta,
  symlink,
  Xattrs,
} from "../composefs/tree.ts";
import { writeErofs } from "../composefs/erofs_writer.ts";
import type { Rootfs, RootfsNode } from "../oci/rootfs.ts";
import type { TarEntry } from "../tar/header.ts";
import { type DiffId, fromHex } from "../util/digest.ts";
import { Yielder } from "../util/yielder.ts";
import { loadRootfs } from "./layer_reader.ts";
import { objectName } from "./objects.ts";
import { RepoFile } from "./repo_file.ts";
import type { Repository } from "./repository.ts";

/** The composefs format versions a composefs image can be written in. */
export type ErofsVersion = 0 | 1;

/** The version an image is made in when it is pulled (composefs-rs's default). */
export const DEFAULT_EROFS_VERSION: ErofsVersion = 1;

const utf8 = new TextEncoder();

function metaOf(entry: TarEntry): Meta {
  const xattrs = new Xattrs();
  for (const [name, value] of Object.entries(entry.xattrs)) xattrs.set(name, value);
  return {
    mode: entry.mode & 0o7777,
    uid: entry.uid,
    gid: entry.gid,
    mtime: { sec: Math.floor(entry.mtime), nsec: 0 },
    xattrs,
  };
}

/** glibc's makedev(3) for the 32 bits EROFS keeps (major < 4096, minor < 2^20). */
function makedev(major: number, minor: number): number {
  return ((minor & 0xff) | ((major & 0xfff) << 8) | ((minor & 0xfff00) << 12)) >>> 0;
}

/** Turns a merged rootfs into a composefs tree; reads the contents of small files from the store. */
class TreeBuilder {
  readonly #leaves = new Map<RootfsNode, Leaf>();
  readonly #yielder = new Yielder({ every: 512 });
  readonly #small = new Uint8Array(INLINE_CONTENT_MAX);

  constructor(readonly repo: Repository) {}

  async directory(node: RootfsNode): Promise<Directory> {
    const dir = new Directory(metaOf(node.entry));
    for (const [name, child] of node.children ?? []) {
      await this.#yielder.yieldIfDue();
      const inode = await this.inode(child);
      if (inode) dir.set(utf8.encode(name), inode);
    }
    return dir;
  }

  async inode(node: RootfsNode): Promise<Inode | undefined> {
    if (node.children) return await this.directory(node);
    const shared = node.inode ?? node; // a hardlink is its target's inode
    const known = this.#leaves.get(shared);
    if (known) return known;
    const leaf = this.#leaf(shared);
    if (leaf) this.#leaves.set(shared, leaf);
    return leaf;
  }

  #leaf(node: RootfsNode): Leaf | undefined {
    const e = node.entry;
    const m = metaOf(e);
    switch (e.kind) {
      case "file":
      case "hardlink": {
        if (node.size === 0) return inlineFile(m, new Uint8Array(0));
        if (!node.object) throw new RepositoryError(`${JSON.stringify(e.path)} has content but no object; run fsck`);
        if (node.size > INLINE_CONTENT_MAX) return externalFile(m, node.size, fromHex(node.object));
        return inlineFile(m, this.#readSmall(node.object, node.size));
      }
      case "symlink":
        return symlink(m, utf8.encode(e.linkname));
      case "chardev":
      case "blockdev":
        return device(m, e.kind, makedev(e.devmajor, e.devminor));
      case "fifo":
        return fifo(m);
      default:
        return undefined; // nothing a filesystem holds (composefs-rs refuses such entries)
    }
  }

  #readSmall(hex: string, size: number): Uint8Array {
    let file: RepoFile;
    try {
      file = RepoFile.openSync(this.repo.objects.path(hex));
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) {
        throw new RepositoryError(`${objectName(hex)} is missing from the repository; run fsck`);
      }
      throw e;
    }
    try {
      let n = 0;
      while (n < size) {
        const r = file.readSync(this.#small.subarray(n, size));
        if (r === null) throw new RepositoryError(`${objectName(hex)} is shorter than recorded; run fsck`);
        n += r;
      }
      return this.#small.slice(0, size);
    } finally {
      file.close();
    }
  }
}

/**
 * The composefs tree of a merged rootfs, with composefs-rs's OCI adjustments
 * (see the module doc).
 */
export async function composefsTreeOf(repo: Repository, rootfs: Rootfs): Promise<Directory> {
  const root = await new TreeBuilder(repo).directory(rootfs.root);
  const usr = root.get("usr");
  const run = root.get("run");
  if (usr?.type === "directory") {
    root.meta = { ...usr.meta, mtime: { ...usr.meta.mtime }, xattrs: usr.meta.xattrs.clone() };
  }
  if (run?.type === "directory") {
    const emptied = new Directory({
      ...run.meta,
      mtime: usr?.type === "directory" ? { ...usr.meta.mtime } : run.meta.mtime,
    });
    root.set("run", emptied);
  }
  return root;
}

/** The composefs tree of the image whose layers are `diffIds` (bottom first). */
export async function composefsTree(repo: Repository, diffIds: readonly DiffId[]): Promise<Directory> {
  return await composefsTreeOf(repo, await loadRootfs(repo, [...diffIds]));
}

/** The composefs EROFS image of the image whose layers are `diffIds`, and its fs-verity digest (hex). */
export async function composefsImage(
  repo: Repository,
  diffIds: readonly DiffId[],
  version: ErofsVersion = DEFAULT_EROFS_VERSION,
): Promise<{ bytes: Uint8Array; id: string }> {
  const tree = await composefsTree(repo, diffIds);
  const bytes = writeErofs(tree, { version });
  return { bytes, id: fsverityHex(bytes) };
}

/**
 * Makes the composefs image (version {@link DEFAULT_EROFS_VERSION}) of the image
 * whose layers are `diffIds` and stores it as an object, durably; returns its
 * fs-verity digest (hex), by which the image record names it. The image is an
 * object like any other: `objects/` holds both the image and what it points to.
 *
 * A tree EROFS cannot hold (a name over 255 bytes, which a tar may carry) gives
 * undefined: the image is stored without a composefs image, and `mount` or
 * `compute-id` then says why.
 */
export async function storeComposefsImage(repo: Repository, diffIds: readonly DiffId[]): Promise<string | undefined> {
  let image;
  try {
    image = await composefsImage(repo, diffIds);
  } catch (e) {
    if (e instanceof FormatError) return undefined;
    throw withContext(e, "making the composefs image");
  }
  if (repo.objects.has(image.id)) return image.id;
  const staging = await repo.objects.stage();
  try {
    staging.putSmall(image.bytes);
    await staging.commit();
  } catch (e) {
    await staging.abort();
    throw e;
  }
  return image.id;
}
