/**
 * An image's merged root filesystem, computed from its stored layers: layers
 * applied in order, `.wh.NAME` and `.wh..wh..opq` whiteouts honoured, hardlinks
 * resolved to the content they share. Used as the source of tar-diff deltas and
 * to check out images. Holds metadata only; contents stay in the object store.
 *
 * Symlinks met inside an entry's path are followed as they would be on disk,
 * but scoped to the image's root (as umoci and containerd apply layers): an
 * absolute target starts from the root and `..` stops there. So a layer that
 * writes `lib/x` over a `lib -> usr/lib` symlink puts `x` in `usr/lib`, and a
 * hostile `evil -> /` or `evil -> ../..` only ever leads back into the tree.
 * Every path of the result is a real directory chain, with no symlink in it.
 *
 * @module
 */
import { FormatError } from "../errors.ts";
import type { TarEntry } from "../tar/header.ts";
import { baseName } from "../tar/path.ts";
import { Yielder } from "../util/yielder.ts";

/** Prefix of a whiteout entry's name. */
export const WHITEOUT_PREFIX = ".wh.";
/** Name of the opaque-directory marker. */
export const OPAQUE_MARKER = ".wh..wh..opq";

/** One path of the merged tree. */
export interface RootfsNode {
  /** The entry that put this path here (from the topmost layer that has it). */
  entry: TarEntry;
  /** Content object (SHA-256 hex) of a regular file, or of a hardlink's target. */
  object?: string;
  /** Content size of a regular file or resolved hardlink. */
  size: number;
  /** Index of the layer the entry came from. */
  layer: number;
  /** Children of a directory, in the order they were first added. */
  children?: Map<string, RootfsNode>;
  /** A directory made only because a deeper path needed it (no layer has an entry for it). */
  implicit?: boolean;
  /**
   * For a hardlink: the regular-file node it shares its inode with (content and
   * metadata), which may since have been replaced or removed at its own path.
   */
  inode?: RootfsNode;
}

/** Most symlinks followed while resolving one path (as securejoin allows). */
const MAX_LINKS = 255;

/**
 * Why a path is not a usable regular file: nothing there, something else there,
 * or a symbolic link that leads nowhere (dangling) or round in circles (a loop).
 */
export type LookupFailure = "missing" | "not a regular file" | "dangling symlink" | "symlink loop";

function dirNode(path: string, layer: number, implicit = false): RootfsNode {
  return {
    entry: {
      path,
      kind: "dir",
      typeflag: "5",
      size: 0,
      mode: 0o755,
      uid: 0,
      gid: 0,
      mtime: 0,
      uname: "",
      gname: "",
      linkname: "",
      devmajor: 0,
      devminor: 0,
      xattrs: {},
    },
    size: 0,
    layer,
    children: new Map(),
    ...(implicit ? { implicit } : {}),
  };
}

function components(path: string): string[] {
  return path.split("/").filter((p) => p !== "" && p !== ".");
}

/** The merged filesystem of a stack of layers. */
export class Rootfs {
  /** The root directory (its entry is synthetic, and it implicit, unless a layer has `./`). */
  readonly root: RootfsNode = dirNode("", -1, true);

  /** Looks a cleaned path up. */
  get(path: string): RootfsNode | undefined {
    if (path === "") return this.root;
    let node: RootfsNode | undefined = this.root;
    for (const part of path.split("/")) {
      node = node?.children?.get(part);
      if (!node) return undefined;
    }
    return node;
  }

  /** A regular file's content (hardlinks resolved), or why there is none. */
  regularFile(path: string): { object?: string; size: number } | LookupFailure {
    const node = this.get(path);
    if (!node) return "missing";
    if (node.entry.kind !== "file" && node.entry.kind !== "hardlink") return "not a regular file";
    if (node.entry.kind === "hardlink" && node.object === undefined && node.size !== 0) return "not a regular file";
    return { object: node.object, size: node.size };
  }

  /** Every path below the root, parents before children, in layer order. */
  *walk(from: RootfsNode = this.root, prefix = ""): Generator<[string, RootfsNode]> {
    for (const [name, child] of from.children ?? []) {
      const path = prefix ? `${prefix}/${name}` : name;
      yield [path, child];
      if (child.children) yield* this.walk(child, path);
    }
  }

  /**
   * Resolves `path` inside the tree, following symlinks scoped to the root (in
   * every component but the last, and in the last too with `followLast`). With
   * `create`, missing directories on the way are made (implicit) and
   * non-directories in the way replaced; without, undefined when the way is
   * blocked. Returns the directory reached, and the last component's name and
   * node (the node is undefined when nothing has that name yet).
   */
  #resolve(
    path: string,
    options: { create: boolean; followLast: boolean; layer: number },
  ): { dir: RootfsNode; name?: string; node?: RootfsNode } | undefined {
    let node = this.root;
    const at: string[] = [];
    const todo = components(path).reverse();
    let links = 0;
    while (todo.length > 0) {
      const part = todo.pop()!;
      if (part === "..") {
        at.pop();
        node = this.get(at.join("/"))!;
        continue;
      }
      const last = todo.length === 0;
      let child = node.children!.get(part);
      if (child?.entry.kind === "symlink" && (!last || options.followLast)) {
        if (++links > MAX_LINKS) {
          throw new FormatError(`too many levels of symbolic links resolving ${JSON.stringify(path)}`);
        }
        const target = child.entry.linkname;
        if (target.startsWith("/")) {
          at.length = 0;
          node = this.root;
        }
        todo.push(...components(target).reverse());
        continue;
      }
      if (last) return { dir: node, name: part, node: child };
      if (!child?.children) {
        if (!options.create) return undefined;
        child = dirNode([...at, part].join("/"), options.layer, true);
        node.children!.set(part, child);
      }
      at.push(part);
      node = child;
    }
    return { dir: node, node };
  }

  /**
   * Looks a path up the way the kernel would with the image's root as `/`:
   * symlinks followed in every component, the last included.
   */
  lookup(path: string): RootfsNode | undefined {
    return this.#resolve(path, { create: false, followLast: true, layer: -1 })?.node;
  }

  /**
   * Applies one layer's entries on top of what is there. A layer may hold
   * millions: `yielder` lets the event loop run meanwhile.
   */
  async apply(
    entries: { entry: TarEntry; object?: string }[],
    layer: number,
    yielder = new Yielder({ every: 256 }),
  ): Promise<void> {
    // Whiteouts hide what lower layers had, whatever their position in this layer.
    for (const { entry } of entries) {
      await yielder.yieldIfDue();
      const name = baseName(entry.path);
      if (!name.startsWith(WHITEOUT_PREFIX)) continue;
      const parent = this.#resolve(entry.path, { create: false, followLast: false, layer })?.dir;
      if (!parent?.children) continue;
      if (name === OPAQUE_MARKER) {
        for (const [k, child] of parent.children) if (child.layer < layer) parent.children.delete(k);
      } else {
        const target = name.slice(WHITEOUT_PREFIX.length);
        const child = parent.children.get(target);
        if (child && child.layer < layer) parent.children.delete(target);
      }
    }
    for (const { entry, object } of entries) {
      await yielder.yieldIfDue();
      if (entry.path === "" || baseName(entry.path).startsWith(WHITEOUT_PREFIX)) {
        if (entry.path === "" && entry.kind === "dir") {
          this.root.entry = entry;
          delete this.root.implicit;
        }
        continue;
      }
      const { dir: parent, name, node: existing } = this.#resolve(entry.path, {
        create: true,
        followLast: false,
        layer,
      })!;
      if (entry.kind === "dir") {
        if (existing?.children) {
          existing.entry = entry; // metadata from the upper layer, children kept
          existing.layer = layer;
          delete existing.implicit;
        } else {
          parent.children!.set(name!, { entry, size: 0, layer, children: new Map() });
        }
        continue;
      }
      let node: RootfsNode = { entry, object, size: entry.kind === "file" ? entry.size : 0, layer };
      if (entry.kind === "hardlink") {
        const target = this.lookup(entry.linkname);
        if (!target || (target.entry.kind !== "file" && target.entry.kind !== "hardlink")) {
          throw new FormatError(
            `hardlink ${JSON.stringify(entry.path)} points to ${
              JSON.stringify(entry.linkname)
            }, which is not a regular file`,
          );
        }
        node = { ...node, object: target.object, size: target.size, inode: target.inode ?? target };
      }
      parent.children!.set(name!, node);
    }
  }
}
