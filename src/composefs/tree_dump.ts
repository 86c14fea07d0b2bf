/**
 * Between trees and dumpfiles: a tree built from parsed dumpfile entries
 * ({@link treeFromDump}, {@link DumpTreeBuilder}), and a tree listed back as
 * dumpfile entries ({@link treeToDump}), as `mkcomposefs --from-file` and
 * `composefs-info dump` do.
 *
 * @module
 */
import { FormatError } from "../errors.ts";
import { type DumpEntry, S_IFDIR, S_IFMT } from "./dumpfile.ts";
import {
  byteKey,
  device,
  Directory,
  inlineFile,
  type Inode,
  INODE_TYPE_BITS,
  type Meta,
  quotePath,
  symlink,
  walk,
  Xattrs,
} from "./tree.ts";

/** Options of {@link treeToDump}. */
export interface TreeToDumpOptions {
  /**
   * The SIZE of a directory. Dumpfile readers ignore it; `composefs-info dump`
   * prints the size the directory has in the image, which
   * `erofs_writer.ts`'s `imageDump` supplies. Default 0.
   */
  directorySize?: (dir: Directory) => number;
}

/**
 * The dumpfile entries of a tree, depth-first in name order, as `composefs-info
 * dump` lists an image: NLINK counted (names of a leaf, 2 + subdirectories for a
 * directory), xattrs sorted by name. The first name of a hardlinked inode is its
 * entry; each later name is an `@` entry with PAYLOAD the first name's path and
 * the other fields those of the inode.
 */
export function* treeToDump(root: Directory, options: TreeToDumpOptions = {}): Generator<DumpEntry> {
  const dirSize = options.directorySize ?? (() => 0);
  const links = new Map<Inode, number>();
  for (const { inode } of walk(root)) if (inode.type !== "directory") links.set(inode, (links.get(inode) ?? 0) + 1);
  const firstPath = new Map<Inode, Uint8Array>();
  for (const { path, inode } of walk(root)) {
    const m = inode.meta;
    let nlink = links.get(inode) ?? 2;
    if (inode.type === "directory") { for (const e of inode.entries()) if (e.inode.type === "directory") nlink++; }
    const first = firstPath.get(inode);
    if (!first && inode.type !== "directory") firstPath.set(inode, path);
    yield {
      line: 0,
      path,
      size: inode.type === "directory"
        ? dirSize(inode)
        : inode.type === "file"
        ? inode.size
        : inode.type === "symlink"
        ? inode.target.length
        : 0,
      mode: INODE_TYPE_BITS[inode.type] | m.mode,
      hardlink: first !== undefined,
      nlink,
      uid: m.uid,
      gid: m.gid,
      rdev: inode.type === "chardev" || inode.type === "blockdev" ? inode.rdev : 0,
      mtime: { ...m.mtime },
      payload: first ?? (inode.type === "symlink" ? inode.target : inode.type === "file" ? inode.payload : null),
      content: inode.type === "file" && inode.content?.length ? inode.content : null,
      digest: inode.type === "file" ? inode.digest : null,
      xattrs: m.xattrs.sorted(),
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
export function treeFromDump(entries: Iterable<DumpEntry>): Directory {
  const builder = new DumpTreeBuilder();
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
  #root: Directory | undefined;
  #byPath = new Map<string, Inode>();

  /** Adds the next entry; throws a {@link FormatError} naming its line when it does not fit. */
  add(e: DumpEntry): void {
    const at = `dumpfile line ${e.line}`;
    const key = byteKey(e.path);
    const byPath = this.#byPath;
    if (!this.#root) {
      if (key !== "/") throw new FormatError(`${at}: the first entry must be the root directory /`);
      if (e.hardlink || (e.mode & S_IFMT) !== S_IFDIR) throw new FormatError(`${at}: / must be a directory`);
      this.#root = new Directory(metaOf(e));
      byPath.set("/", this.#root);
      return;
    }
    if (byPath.has(key)) throw new FormatError(`${at}: path ${quotePath(e.path)} appears twice`);
    const slash = e.path.lastIndexOf(0x2f);
    const parent = byPath.get(slash === 0 ? "/" : byteKey(e.path.subarray(0, slash)));
    if (!parent) throw new FormatError(`${at}: the parent of ${quotePath(e.path)} is not listed before it`);
    if (parent.type !== "directory") {
      throw new FormatError(`${at}: the parent of ${quotePath(e.path)} is not a directory`);
    }
    const inode = e.hardlink ? hardlinkTarget(e, byPath, at) : inodeOf(e, at);
    parent.set(e.path.subarray(slash + 1), inode);
    byPath.set(key, inode);
  }

  /** The tree of the entries added; a {@link FormatError} when there were none. */
  finish(): Directory {
    if (!this.#root) throw new FormatError("dumpfile is empty: it must list at least the root directory /");
    return this.#root;
  }
}

function hardlinkTarget(e: DumpEntry, byPath: Map<string, Inode>, at: string): Inode {
  if (!e.payload) throw new FormatError(`${at}, field PAYLOAD: a hardlink needs the path of its target`);
  const target = byPath.get(byteKey(e.payload));
  if (!target) {
    throw new FormatError(`${at}, field PAYLOAD: hardlink target ${quotePath(e.payload)} is not listed before it`);
  }
  if (target.type === "directory") {
    throw new FormatError(`${at}, field PAYLOAD: hardlink target ${quotePath(e.payload)} is a directory`);
  }
  return target;
}

function metaOf(e: DumpEntry): Meta {
  const xattrs = new Xattrs();
  for (const x of e.xattrs) xattrs.set(x.name, x.value);
  return { mode: e.mode & 0o7777, uid: e.uid, gid: e.gid, mtime: { ...e.mtime }, xattrs };
}

function inodeOf(e: DumpEntry, at: string): Inode {
  const m = metaOf(e);
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
      return new Directory(m);
    case "file":
      if (e.content) {
        if (e.content.length !== e.size) {
          throw new FormatError(`${at}, field CONTENT: ${e.content.length} bytes, but SIZE says ${e.size}`);
        }
        if (e.digest) throw new FormatError(`${at}, field DIGEST: an inline file has no digest`);
        return inlineFile(m, e.content);
      }
      if (e.size === 0) return inlineFile(m, new Uint8Array(0));
      return { type: "file", meta: m, size: e.size, content: null, digest: e.digest, payload: e.payload };
    case "symlink":
      if (!e.payload || e.payload.length === 0) throw new FormatError(`${at}, field PAYLOAD: a symlink needs a target`);
      return symlink(m, e.payload);
    case "chardev":
    case "blockdev":
      if (e.payload) throw new FormatError(`${at}, field PAYLOAD: a device has no payload`);
      return device(m, type, e.rdev);
    default:
      if (e.payload) throw new FormatError(`${at}, field PAYLOAD: a ${type} has no payload`);
      return { type, meta: m };
  }
}
