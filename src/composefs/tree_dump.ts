/**
 * Between trees and dumpfiles: a tree built from parsed dumpfile entries
 * ({@link treeFromDump}, {@link DumpTreeBuilder}), and a tree listed back as
 * dumpfile entries ({@link treeToDump}), as `mkcomposefs --from-file` and
 * `composefs-info dump` do. Both work on the packed tree, one entry at a time,
 * so a dumpfile of millions of lines costs the tree and no more.
 *
 * @module
 */
import { FormatError } from "../errors.ts";
import { type DumpEntry, S_IFDIR, S_IFMT } from "./dumpfile.ts";
import { type InodeMeta, PackedTree, type PackedTreeOptions } from "./packed_tree.ts";
import { childPath, type Inode, INODE_TYPE_BITS, quotePath, type Xattr } from "./tree.ts";

/**
 * Walks a packed tree depth-first with each directory's entries in name order:
 * parents before children, as a dumpfile lists them. Yields each path with its
 * inode; the root comes first, with path `/`.
 */
export function* walkPacked(tree: PackedTree): Generator<{ path: Uint8Array; inode: number }> {
  yield { path: Uint8Array.of(0x2f), inode: PackedTree.ROOT };
  yield* walkDir(tree, PackedTree.ROOT, new Uint8Array(0));
}

function* walkDir(tree: PackedTree, dir: number, prefix: Uint8Array): Generator<{ path: Uint8Array; inode: number }> {
  for (const e of tree.sortedEntries(dir)) {
    const inode = tree.entryInode(e);
    const path = childPath(prefix, tree.entryName(e));
    yield { path, inode };
    if (tree.isDirectory(inode)) yield* walkDir(tree, inode, path);
  }
}

/** Options of {@link treeToDump}. */
export interface TreeToDumpOptions {
  /**
   * The SIZE of a directory (given its inode). Dumpfile readers ignore it;
   * `composefs-info dump` prints the size the directory has in the image, which
   * `erofs_writer.ts`'s `imageDump` supplies. Default 0.
   */
  directorySize?: (dir: number) => number;
}

/**
 * The dumpfile entries of a tree, depth-first in name order, as `composefs-info
 * dump` lists an image: NLINK counted (names of a leaf, 2 + subdirectories for a
 * directory), xattrs sorted by name. The first name of a hardlinked inode is its
 * entry; each later name is an `@` entry with PAYLOAD the first name's path, the
 * inode's SIZE, MODE, NLINK, owner, RDEV and MTIME, and no CONTENT, DIGEST or
 * xattrs (as `composefs-info dump` prints it).
 */
export function* treeToDump(tree: PackedTree, options: TreeToDumpOptions = {}): Generator<DumpEntry> {
  const dirSize = options.directorySize ?? (() => 0);
  const links = new Uint32Array(tree.inodeCount);
  for (const { inode } of walkPacked(tree)) if (!tree.isDirectory(inode)) links[inode]++;
  const firstPath = new Map<number, Uint8Array>();
  for (const { path, inode } of walkPacked(tree)) {
    const dir = tree.isDirectory(inode);
    let nlink = links[inode];
    if (dir) {
      nlink = 2;
      for (const e of tree.entries(inode)) if (tree.isDirectory(tree.entryInode(e))) nlink++;
    }
    const first = firstPath.get(inode);
    if (!first && !dir && nlink > 1) firstPath.set(inode, path);
    const kind = tree.kind(inode);
    yield {
      line: 0,
      path,
      size: dir ? dirSize(inode) : tree.size(inode),
      mode: INODE_TYPE_BITS[kind] | tree.mode(inode),
      hardlink: first !== undefined,
      nlink,
      uid: tree.uid(inode),
      gid: tree.gid(inode),
      rdev: tree.rdev(inode),
      mtime: { sec: tree.sec(inode), nsec: tree.nsec(inode) },
      // A later name of an inode gives its first name's path, and (as composefs-info prints it) no content,
      // digest or xattrs.
      payload: first ?? (kind === "symlink" ? tree.target(inode) : kind === "file" ? tree.payload(inode) : null),
      content: !first && tree.content(inode)?.length ? tree.content(inode) : null,
      digest: !first && kind === "file" ? tree.digest(inode) : null,
      xattrs: first ? [] : [...tree.xattrSet(tree.xattrs(inode))],
    };
  }
}

/** The kind of inode each file-type value of a mode names. */
const TYPES = new Map<number, Inode["type"]>(
  (Object.entries(INODE_TYPE_BITS) as [Inode["type"], number][]).map(([type, bits]) => [bits, type]),
);

/**
 * Builds the tree a dumpfile describes. The first entry must be the root directory
 * `/`; each later one names a new path whose parent directory came before it.
 * A hardlink entry (`@` mode) adds the inode of an earlier non-directory path; its
 * other fields are ignored. Directory sizes and all link counts are ignored too (the
 * writer recomputes them), as `mkcomposefs` does. Any inconsistency is a
 * {@link FormatError} naming the line.
 */
export function treeFromDump(entries: Iterable<DumpEntry>, options: PackedTreeOptions = {}): PackedTree {
  const builder = new DumpTreeBuilder(options);
  for (const e of entries) builder.add(e);
  return builder.finish();
}

/**
 * {@link treeFromDump} one entry at a time, for entries that arrive from a stream:
 *
 * ```ts
 * const builder = new DumpTreeBuilder();
 * for await (const e of readDumpfile(stream)) builder.add(e);
 * const root = builder.finish();
 * ```
 */
export class DumpTreeBuilder {
  #tree: PackedTree | undefined;
  /** The last parent directory looked up (dumpfiles list a directory's entries together). */
  #lastParent = { path: new Uint8Array(0), dir: -1 };

  constructor(readonly options: PackedTreeOptions = {}) {}

  /** Adds the next entry; throws a {@link FormatError} naming its line when it does not fit. */
  add(e: DumpEntry): void {
    const at = `dumpfile line ${e.line}`;
    const tree = this.#tree;
    if (!tree) {
      if (e.path.length !== 1 || e.path[0] !== 0x2f) {
        throw new FormatError(`${at}: the first entry must be the root directory /`);
      }
      if (e.hardlink || (e.mode & S_IFMT) !== S_IFDIR) throw new FormatError(`${at}: / must be a directory`);
      this.#tree = new PackedTree({ mode: 0, uid: 0, gid: 0, sec: 0, nsec: 0, xattrs: 0 }, this.options);
      this.#tree.setMeta(PackedTree.ROOT, this.#meta(e, at));
      return;
    }
    if (e.path.length === 1) throw new FormatError(`${at}: path ${quotePath(e.path)} appears twice`);
    const slash = e.path.lastIndexOf(0x2f);
    const parent = this.#parent(e.path.subarray(0, slash));
    if (parent === -1) throw new FormatError(`${at}: the parent of ${quotePath(e.path)} is not listed before it`);
    if (parent === -2) throw new FormatError(`${at}: the parent of ${quotePath(e.path)} is not a directory`);
    const name = e.path.subarray(slash + 1);
    if (tree.lookup(parent, name) >= 0) throw new FormatError(`${at}: path ${quotePath(e.path)} appears twice`);
    const inode = e.hardlink ? this.#hardlinkTarget(e, at) : this.#inode(e, at);
    tree.link(parent, name, inode);
  }

  /** The tree of the entries added; a {@link FormatError} when there were none. */
  finish(): PackedTree {
    if (!this.#tree) throw new FormatError("dumpfile is empty: it must list at least the root directory /");
    return this.#tree;
  }

  /** The directory at `path` (without its trailing slash; empty for the root), -1 when missing, -2 when not a directory. */
  #parent(path: Uint8Array): number {
    const last = this.#lastParent;
    if (last.dir >= 0 && sameBytes(last.path, path)) return last.dir;
    const found = this.#resolve(path);
    if (found < 0) return -1;
    if (!this.#tree!.isDirectory(found)) return -2;
    this.#lastParent = { path: path.slice(), dir: found };
    return found;
  }

  /** The inode at the absolute `path` (empty or `/` for the root), or -1 when some component is missing. */
  #resolve(path: Uint8Array): number {
    const tree = this.#tree!;
    let dir = PackedTree.ROOT;
    let start = 1;
    while (start < path.length) {
      let end = path.indexOf(0x2f, start);
      if (end < 0) end = path.length;
      if (!tree.isDirectory(dir)) return -1;
      dir = tree.child(dir, path.subarray(start, end));
      if (dir < 0) return -1;
      start = end + 1;
    }
    return dir;
  }

  #hardlinkTarget(e: DumpEntry, at: string): number {
    if (!e.payload) throw new FormatError(`${at}, field PAYLOAD: a hardlink needs the path of its target`);
    const target = this.#resolve(e.payload);
    if (target < 0) {
      throw new FormatError(`${at}, field PAYLOAD: hardlink target ${quotePath(e.payload)} is not listed before it`);
    }
    if (this.#tree!.isDirectory(target)) {
      throw new FormatError(`${at}, field PAYLOAD: hardlink target ${quotePath(e.payload)} is a directory`);
    }
    return target;
  }

  #meta(e: DumpEntry, at: string): InodeMeta {
    // A name given twice keeps its last value.
    const byName = new Map<string, Xattr>();
    for (const x of e.xattrs) byName.set(String.fromCharCode(...x.name), x);
    let xattrs: number;
    try {
      xattrs = this.#tree!.internXattrs(byName.values());
    } catch (err) {
      if (err instanceof FormatError) throw new FormatError(`${at}: ${err.message}`, { cause: err });
      throw err;
    }
    return { mode: e.mode & 0o7777, uid: e.uid, gid: e.gid, sec: e.mtime.sec, nsec: e.mtime.nsec, xattrs };
  }

  #inode(e: DumpEntry, at: string): number {
    const tree = this.#tree!;
    const m = this.#meta(e, at);
    const type = TYPES.get(e.mode & S_IFMT)!; // the dumpfile reader admits only these types
    if (type !== "file") {
      if (e.content) throw new FormatError(`${at}, field CONTENT: only regular files have content`);
      if (e.digest) throw new FormatError(`${at}, field DIGEST: only regular files have a digest`);
    }
    if (type !== "chardev" && type !== "blockdev" && e.rdev !== 0) {
      throw new FormatError(`${at}, field RDEV: only devices have a device number`);
    }
    switch (type) {
      case "directory":
        if (e.payload) throw new FormatError(`${at}, field PAYLOAD: a directory has no payload`);
        return tree.addDirectory(m);
      case "file":
        if (e.content) {
          if (e.content.length !== e.size) {
            throw new FormatError(`${at}, field CONTENT: ${e.content.length} bytes, but SIZE says ${e.size}`);
          }
          if (e.digest) throw new FormatError(`${at}, field DIGEST: an inline file has no digest`);
          return tree.addInlineFile(m, e.content);
        }
        if (e.size === 0) return tree.addInlineFile(m, new Uint8Array(0));
        return tree.addExternalFile(m, e.size, e.digest, e.payload);
      case "symlink":
        if (!e.payload || e.payload.length === 0) {
          throw new FormatError(`${at}, field PAYLOAD: a symlink needs a target`);
        }
        return tree.addSymlink(m, e.payload);
      case "chardev":
      case "blockdev":
        if (e.payload) throw new FormatError(`${at}, field PAYLOAD: a device has no payload`);
        return tree.addDevice(m, type, e.rdev);
      default:
        if (e.payload) throw new FormatError(`${at}, field PAYLOAD: a ${type} has no payload`);
        return tree.addSpecial(m, type);
    }
  }
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
