/**
 * The composefs image of a stored OCI image: its merged tree built the way
 * composefs-rs builds it (`crates/composefs-oci/src/image.rs` and `tar.rs`,
 * `transform_for_oci` in `crates/composefs/src/generic_tree.rs`), written as a
 * composefs EROFS image (`composefs/erofs_writer.ts`), and kept in the object
 * store under its fs-verity digest: the image's composefs id, what
 * `cfsctl --hash sha256 oci compute-id` prints.
 *
 * The rules (docs/design.md lists them with their sources):
 * - layers applied bottom first with the layer rules of `oci/rootfs.ts`
 *   (whiteouts hide lower layers only; hardlinks stay one inode, whatever they
 *   name but a directory); metadata from each path's topmost entry;
 * - owner, permission bits (`mode & 0o7777`), mtime with a PAX fraction's
 *   nanoseconds, and `SCHILY.xattr.*` xattrs from the tar headers; names as
 *   their bytes;
 * - regular files of at most 64 bytes inline, larger ones external, named by the
 *   object that holds them;
 * - the root directory takes `/usr`'s mode, owner, mtime and xattrs, `/run` is
 *   emptied and takes `/usr`'s mtime, and only `security.capability` xattrs are
 *   kept (`user.*` too with `keep-user-xattrs`). An image without `/usr`
 *   (composefs-rs refuses it) keeps the root's own metadata and `/run`'s mtime.
 *
 * The tree is packed (`composefs/packed_tree.ts`) and built from the layer
 * records one entry at a time, each layer read twice (its whiteouts first), so
 * that an image of a million entries costs the packed tree and no more; the
 * image is written out in chunks as it is made.
 *
 * @module
 */
import { FormatError, NotFoundError, RepositoryError, withContext } from "../errors.ts";
import { FsVerityHasher } from "../composefs/fsverity.ts";
import { type InodeMeta, PackedTree } from "../composefs/packed_tree.ts";
import { INLINE_CONTENT_MAX } from "../composefs/tree.ts";
import { erofsChunks, type ErofsOptions } from "../composefs/erofs_writer.ts";
import { isWhiteout, LayerMerger, type MergeTarget, WHITEOUT_PREFIX } from "../oci/rootfs.ts";
import { parseHeaderGroup } from "../tar/header_group.ts";
import { decodeName, encodeName, quote, type TarEntry } from "../tar/header.ts";
import { type DiffId, fromHex, toHex } from "../util/digest.ts";
import { Yielder } from "../util/yielder.ts";
import { layerEntries } from "./layer_reader.ts";
import { readRecord } from "./layer_record.ts";
import { objectName } from "./objects.ts";
import { RepoFile } from "./repo_file.ts";
import type { Repository } from "./repository.ts";

/** The composefs format versions a composefs image can be written in. */
export type ErofsVersion = 0 | 1;

/** The version an image is made in when it is pulled (composefs-rs's default). */
export const DEFAULT_EROFS_VERSION: ErofsVersion = 1;

/**
 * Which xattrs the tree keeps (composefs-rs's `XattrFiltering`, cfsctl's
 * `--xattrs`): `security.capability` only, or `user.*` too.
 */
export type XattrFiltering = "allowlist-only" | "keep-user-xattrs";

/** The filtering composefs-rs uses by default, and the repository's stored images are made with. */
export const DEFAULT_XATTRS: XattrFiltering = "allowlist-only";

/** The names {@link XattrFiltering} takes. */
export const XATTR_FILTERINGS: readonly XattrFiltering[] = ["allowlist-only", "keep-user-xattrs"];

/** How to make a composefs image. */
export interface ComposefsOptions {
  version?: ErofsVersion;
  xattrs?: XattrFiltering;
  /** Bytes the tree and the writer may hold (`--memory-limit`); past it, a `LimitError`. */
  memoryLimit?: number;
}

const CAPABILITY = new TextEncoder().encode("security.capability");
const USER = new TextEncoder().encode("user.");

/** The names `filtering` keeps (composefs-rs's `CONTAINER_XATTR_ALLOWLIST`, and `user.*` with keep-user-xattrs). */
function keeps(filtering: XattrFiltering): (name: Uint8Array) => boolean {
  const capability = (n: Uint8Array) => n.length === CAPABILITY.length && CAPABILITY.every((x, i) => n[i] === x);
  const user = (n: Uint8Array) => n.length >= USER.length && USER.every((x, i) => n[i] === x);
  return filtering === "keep-user-xattrs" ? (n) => capability(n) || user(n) : capability;
}

/** glibc's makedev(3) for the 32 bits EROFS keeps (major < 4096, minor < 2^20). */
function makedev(major: number, minor: number): number {
  return ((minor & 0xff) | ((major & 0xfff) << 8) | ((minor & 0xfff00) << 12)) >>> 0;
}

/** A node of the tree being built: an entry of the packed tree, or the root. */
type Node = number;
const ROOT_NODE: Node = -1;

/** The packed tree as the layer rules see it, with the layer each entry came from. */
class PackedTarget implements MergeTarget<Node> {
  readonly root = ROOT_NODE;
  #layers = new Uint32Array(1 << 10);
  readonly #small = new Uint8Array(INLINE_CONTENT_MAX);

  constructor(readonly tree: PackedTree, readonly repo: Repository) {}

  inode(node: Node): number {
    return node === ROOT_NODE ? PackedTree.ROOT : this.tree.entryInode(node);
  }

  #setLayer(entry: number, layer: number): void {
    if (entry >= this.#layers.length) {
      const grown = new Uint32Array(Math.max(entry + 1, this.#layers.length * 2));
      grown.set(this.#layers);
      this.#layers = grown;
    }
    this.#layers[entry] = layer;
  }

  child(dir: Node, name: string): Node | undefined {
    const e = this.tree.lookup(this.inode(dir), encodeName(name));
    return e < 0 ? undefined : e;
  }

  *names(dir: Node): Iterable<string> {
    for (const e of this.tree.entries(this.inode(dir))) yield decodeName(this.tree.entryName(e));
  }

  isDirectory(node: Node): boolean {
    return this.tree.isDirectory(this.inode(node));
  }

  symlinkTarget(node: Node): string | undefined {
    const i = this.inode(node);
    return this.tree.kind(i) === "symlink" ? decodeName(this.tree.target(i)) : undefined;
  }

  layerOf(node: Node): number {
    return node === ROOT_NODE ? -1 : this.#layers[node];
  }

  setRoot(entry: TarEntry): void {
    this.tree.setMeta(PackedTree.ROOT, this.meta(entry));
  }

  remove(dir: Node, name: string): void {
    this.tree.unlink(this.inode(dir), encodeName(name));
  }

  implicitDirectory(dir: Node, name: string, layer: number): Node {
    const made = this.tree.addDirectory({ mode: 0o755, uid: 0, gid: 0, sec: 0, nsec: 0, xattrs: 0 });
    const e = this.tree.link(this.inode(dir), encodeName(name), made);
    this.#setLayer(e, layer);
    return e;
  }

  directory(dir: Node, name: string, existing: Node | undefined, entry: TarEntry, layer: number): void {
    if (existing !== undefined) {
      this.tree.setMeta(this.inode(existing), this.meta(entry));
      this.#setLayer(existing, layer);
      return;
    }
    const e = this.tree.link(this.inode(dir), encodeName(name), this.tree.addDirectory(this.meta(entry)));
    this.#setLayer(e, layer);
  }

  leaf(dir: Node, name: string, entry: TarEntry, object: string | undefined, layer: number, target?: Node): void {
    const inode = target !== undefined ? this.inode(target) : this.#leaf(entry, object);
    if (inode === undefined) return; // nothing a filesystem holds (composefs-rs refuses such entries)
    this.#setLayer(this.tree.link(this.inode(dir), encodeName(name), inode), layer);
  }

  #leaf(e: TarEntry, object: string | undefined): number | undefined {
    const m = this.meta(e);
    const tree = this.tree;
    switch (e.kind) {
      case "file": {
        if (e.size === 0) return tree.addInlineFile(m, new Uint8Array(0));
        if (!object) throw new RepositoryError(`${quote(e.path)} has content but no object; run fsck`);
        if (e.size > INLINE_CONTENT_MAX) return tree.addExternalFile(m, e.size, fromHex(object));
        return tree.addInlineFile(m, this.#readSmall(object, e.size));
      }
      case "symlink":
        return tree.addSymlink(m, encodeName(e.linkname));
      case "chardev":
      case "blockdev":
        return tree.addDevice(m, e.kind, makedev(e.devmajor, e.devminor));
      case "fifo":
        return tree.addSpecial(m, "fifo");
      default:
        return undefined;
    }
  }

  /** The metadata a tar entry gives its inode. */
  meta(e: TarEntry): InodeMeta {
    const names = Object.keys(e.xattrs);
    const xattrs = names.length === 0
      ? 0
      : this.tree.internXattrs(names.map((name) => ({ name: encodeName(name), value: e.xattrs[name] })));
    const sec = e.mtimeExact?.sec ?? Math.floor(e.mtime);
    return { mode: e.mode & 0o7777, uid: e.uid, gid: e.gid, sec, nsec: e.mtimeExact?.nsec ?? 0, xattrs };
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

/** How `--memory-limit` is named in a `LimitError`. */
function limitName(limit: number): string {
  return `--memory-limit (${(limit / (1 << 20)).toFixed(limit < 1 << 20 ? 2 : 0)} MiB)`;
}

/**
 * The composefs tree of the image whose layers are `diffIds` (bottom first),
 * with composefs-rs's OCI adjustments (see the module doc).
 */
export async function composefsTree(
  repo: Repository,
  diffIds: readonly DiffId[],
  options: ComposefsOptions = {},
): Promise<PackedTree> {
  const limit = options.memoryLimit;
  const tree = new PackedTree(
    { mode: 0o755, uid: 0, gid: 0, sec: 0, nsec: 0, xattrs: 0 },
    limit === undefined ? {} : { limit, limitName: limitName(limit) },
  );
  const target = new PackedTarget(tree, repo);
  const merger = new LayerMerger(target);
  const yielder = new Yielder({ every: 4096 });
  for (let layer = 0; layer < diffIds.length; layer++) {
    try {
      // Whiteouts hide what lower layers had, whatever their position in this layer: they go first.
      for await (const entry of whiteouts(repo, diffIds[layer])) {
        await yielder.yieldIfDue();
        merger.whiteout(entry, layer);
      }
      for await (const { entry, object } of layerEntries(repo, diffIds[layer])) {
        await yielder.yieldIfDue();
        if (isWhiteout(entry)) continue;
        try {
          merger.add(entry, object, layer);
        } catch (e) {
          if (e instanceof FormatError && !e.message.includes(quote(entry.path))) {
            throw new FormatError(`${quote(entry.path)}: ${e.message}`, { cause: e });
          }
          throw e;
        }
      }
    } catch (e) {
      throw withContext(e, `layer ${diffIds[layer]}`);
    }
  }
  transformForOci(tree, options.xattrs ?? DEFAULT_XATTRS);
  return tree;
}

const WH = new TextEncoder().encode(WHITEOUT_PREFIX);

/** True when `bytes` holds `.wh.` somewhere (every header group of a whiteout does, in a name field or record). */
function mayNameWhiteout(bytes: Uint8Array): boolean {
  for (let i = bytes.indexOf(WH[0]); i >= 0 && i + WH.length <= bytes.length; i = bytes.indexOf(WH[0], i + 1)) {
    if (bytes[i + 1] === WH[1] && bytes[i + 2] === WH[2] && bytes[i + 3] === WH[3]) return true;
  }
  return false;
}

/**
 * The whiteout entries of a stored layer, in order: its header groups are
 * searched for `.wh.` first, and only those that have it parsed (parsing every
 * header is most of what reading a layer costs).
 */
async function* whiteouts(repo: Repository, diffId: DiffId): AsyncGenerator<TarEntry> {
  try {
    for await (const item of readRecord(repo.layerPath(diffId))) {
      if (item.type !== "header" || !mayNameWhiteout(item.bytes)) continue;
      const entry = parseHeaderGroup(item.bytes, new Map());
      if (isWhiteout(entry)) yield entry;
    }
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) throw new NotFoundError(`layer ${diffId} is not in the repository`);
    throw e;
  }
}

/** composefs-rs's `transform_for_oci`: the root takes `/usr`'s metadata, `/run` is emptied, xattrs filtered. */
function transformForOci(tree: PackedTree, xattrs: XattrFiltering): void {
  const enc = new TextEncoder();
  const usr = tree.child(PackedTree.ROOT, enc.encode("usr"));
  const run = tree.child(PackedTree.ROOT, enc.encode("run"));
  const usrDir = usr >= 0 && tree.isDirectory(usr);
  if (usrDir) tree.setMeta(PackedTree.ROOT, tree.meta(usr));
  if (run >= 0 && tree.isDirectory(run)) {
    tree.clear(run);
    if (usrDir) tree.setMeta(run, { ...tree.meta(run), sec: tree.sec(usr), nsec: tree.nsec(usr) });
  }
  tree.filterXattrs(keeps(xattrs));
}

/** The writer's options (version, and the memory limit, named as the option) for `options`. */
export function writerOptions(options: ComposefsOptions): ErofsOptions {
  const limit = options.memoryLimit;
  return {
    version: options.version ?? DEFAULT_EROFS_VERSION,
    ...(limit === undefined ? {} : { limit, limitName: limitName(limit) }),
  };
}

/**
 * The composefs EROFS image of the image whose layers are `diffIds`, in chunks
 * (each valid until the next is asked for), with the tree it was made of.
 */
export async function composefsImageChunks(
  repo: Repository,
  diffIds: readonly DiffId[],
  options: ComposefsOptions = {},
): Promise<Generator<Uint8Array>> {
  return erofsChunks(await composefsTree(repo, diffIds, options), writerOptions(options));
}

/** The composefs id (fs-verity digest, hex) of the image whose layers are `diffIds`, the image never held whole. */
export async function composefsId(
  repo: Repository,
  diffIds: readonly DiffId[],
  options: ComposefsOptions = {},
): Promise<string> {
  const hasher = new FsVerityHasher();
  const yielder = new Yielder();
  for (const chunk of await composefsImageChunks(repo, diffIds, options)) {
    hasher.update(chunk);
    await yielder.yieldIfDue();
  }
  return toHex(hasher.digest());
}

/** The composefs EROFS image of the image whose layers are `diffIds`, and its fs-verity digest (hex). */
export async function composefsImage(
  repo: Repository,
  diffIds: readonly DiffId[],
  options: ComposefsOptions = {},
): Promise<{ bytes: Uint8Array; id: string }> {
  const parts: Uint8Array[] = [];
  const hasher = new FsVerityHasher();
  for (const chunk of await composefsImageChunks(repo, diffIds, options)) {
    hasher.update(chunk);
    parts.push(chunk.slice());
  }
  const bytes = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
  let at = 0;
  for (const p of parts) {
    bytes.set(p, at);
    at += p.length;
  }
  return { bytes, id: toHex(hasher.digest()) };
}

/**
 * Makes the composefs image (version {@link DEFAULT_EROFS_VERSION}, xattrs
 * {@link DEFAULT_XATTRS}) of the image whose layers are `diffIds` and stores it
 * as an object, durably, written out as it is made; returns its fs-verity
 * digest (hex), by which the image record names it. The image is an object like
 * any other: `objects/` holds both the image and what it points to.
 *
 * A tree EROFS cannot hold (a name over 255 bytes, which a tar may carry) gives
 * undefined: the image is stored without a composefs image, and `mount` or
 * `compute-id` then says why. A tree that does not fit `memoryLimit` is a
 * `LimitError`.
 */
export async function storeComposefsImage(
  repo: Repository,
  diffIds: readonly DiffId[],
  memoryLimit?: number,
): Promise<string | undefined> {
  let chunks;
  try {
    chunks = await composefsImageChunks(repo, diffIds, { memoryLimit });
  } catch (e) {
    if (e instanceof FormatError) return undefined;
    throw withContext(e, "making the composefs image");
  }
  const staging = await repo.objects.stage();
  try {
    const writer = await staging.begin();
    try {
      for (const chunk of chunks) await writer.write(chunk);
    } catch (e) {
      await writer.abort();
      throw e;
    }
    const id = toHex(await writer.finish());
    await staging.commit();
    return id;
  } catch (e) {
    await staging.abort();
    throw e;
  }
}
