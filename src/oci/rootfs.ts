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
import { quote, type TarEntry } from "../tar/header.ts";
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
   * For a hardlink: the node it shares its inode with (a regular file, symlink,
   * device or fifo: content and metadata), which may since have been replaced
   * or removed at its own path.
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

/** True for a whiteout entry (`.wh.NAME` or the opaque marker `.wh..wh..opq`): it hides, it adds nothing. */
export function isWhiteout(entry: TarEntry): boolean {
  return baseName(entry.path).startsWith(WHITEOUT_PREFIX);
}

/**
 * What the layer rules need of a tree being built: {@link Rootfs} keeps its
 * nodes as objects (for checkouts and deltas), the composefs image builder in
 * a packed tree; both apply layers with one {@link LayerMerger}. `N` is a node
 * (a name in a directory, with what it names).
 */
export interface MergeTarget<N> {
  readonly root: N;
  /** The node named `name` in directory `dir`, or undefined. */
  child(dir: N, name: string): N | undefined;
  /** The names in directory `dir`. */
  names(dir: N): Iterable<string>;
  isDirectory(node: N): boolean;
  /** A symlink's target (also through a hardlink to one); undefined for anything else. */
  symlinkTarget(node: N): string | undefined;
  /** The index of the layer that put the node where it is (-1 for the root). */
  layerOf(node: N): number;
  /** The entry of a layer's `./`: the root's metadata. */
  setRoot(entry: TarEntry): void;
  remove(dir: N, name: string): void;
  /** A directory made at `name` in `dir` (whose path is `path`) because a deeper path of layer `layer` needs it. */
  implicitDirectory(dir: N, name: string, layer: number, path: string): N;
  /** A directory entry of layer `layer` at `name` in `dir`: merged into `existing` when that is a directory. */
  directory(dir: N, name: string, existing: N | undefined, entry: TarEntry, layer: number): void;
  /**
   * Any other entry at `name` in `dir`, replacing what is there; a hardlink comes
   * with `target`, the node whose inode it shares (a file, symlink, device or fifo).
   */
  leaf(dir: N, name: string, entry: TarEntry, object: string | undefined, layer: number, target?: N): void;
}

/**
 * The layer rules: whiteouts, then everything else, applied to a
 * {@link MergeTarget}. For each layer, call {@link whiteout} with each of its
 * whiteout entries (they hide what lower layers had, wherever they are in the
 * layer), then {@link add} with the others in order.
 */
export class LayerMerger<N> {
  constructor(readonly tree: MergeTarget<N>) {}

  /** Applies one whiteout entry of layer `layer`. */
  whiteout(entry: TarEntry, layer: number): void {
    const tree = this.tree;
    const name = baseName(entry.path);
    const parent = this.resolve(entry.path, { create: false, followLast: false, layer })?.dir;
    if (parent === undefined || !tree.isDirectory(parent)) return;
    if (name === OPAQUE_MARKER) {
      for (const k of [...tree.names(parent)]) {
        if (tree.layerOf(tree.child(parent, k)!) < layer) tree.remove(parent, k);
      }
    } else {
      const target = name.slice(WHITEOUT_PREFIX.length);
      const child = tree.child(parent, target);
      if (child !== undefined && tree.layerOf(child) < layer) tree.remove(parent, target);
    }
  }

  /** Applies one entry of layer `layer` that is not a whiteout; `object` holds a file's content. */
  add(entry: TarEntry, object: string | undefined, layer: number): void {
    const tree = this.tree;
    if (entry.path === "") {
      if (entry.kind === "dir") tree.setRoot(entry);
      return;
    }
    const { dir: parent, name, node: existing } = this.resolve(entry.path, { create: true, followLast: false, layer })!;
    if (entry.kind === "dir") {
      tree.directory(
        parent,
        name!,
        existing !== undefined && tree.isDirectory(existing) ? existing : undefined,
        entry,
        layer,
      );
      return;
    }
    let target: N | undefined;
    if (entry.kind === "hardlink") {
      // As umoci and container engines link: symlinks followed in the target's directories, not in its last
      // name (a hardlink to a symlink is one to the symlink itself), and anything but a directory linked.
      target = this.resolve(entry.linkname, { create: false, followLast: false, layer })?.node;
      if (target === undefined || tree.isDirectory(target)) {
        throw new FormatError(
          `hardlink ${quote(entry.path)} points to ${quote(entry.linkname)}, which is ${
            target === undefined ? "not there" : "a directory"
          }`,
        );
      }
    }
    tree.leaf(parent, name!, entry, object, layer, target);
  }

  /**
   * Resolves `path` inside the tree, following symlinks scoped to the root (in
   * every component but the last, and in the last too with `followLast`). With
   * `create`, missing directories on the way are made (implicit) and
   * non-directories in the way replaced; without, undefined when the way is
   * blocked. Returns the directory reached, and the last component's name and
   * node (the node is undefined when nothing has that name yet).
   */
  resolve(
    path: string,
    options: { create: boolean; followLast: boolean; layer: number },
  ): { dir: N; name?: string; node?: N } | undefined {
    const tree = this.tree;
    let node = tree.root;
    const at: N[] = [];
    const names: string[] = [];
    const todo = components(path).reverse();
    let links = 0;
    while (todo.length > 0) {
      const part = todo.pop()!;
      if (part === "..") {
        node = at.pop() ?? tree.root;
        names.pop();
        continue;
      }
      const last = todo.length === 0;
      let child = tree.child(node, part);
      const link = child === undefined ? undefined : tree.symlinkTarget(child);
      if (link !== undefined && (!last || options.followLast)) {
        if (++links > MAX_LINKS) throw new FormatError(`too many levels of symbolic links resolving ${quote(path)}`);
        if (link.startsWith("/")) {
          at.length = 0;
          names.length = 0;
          node = tree.root;
        }
        todo.push(...components(link).reverse());
        continue;
      }
      if (last) return { dir: node, name: part, node: child };
      if (child === undefined || !tree.isDirectory(child)) {
        if (!options.create) return undefined;
        child = tree.implicitDirectory(node, part, options.layer, [...names, part].join("/"));
      }
      at.push(node);
      names.push(part);
      node = child;
    }
    return { dir: node, node };
  }
}

/** The merged filesystem of a stack of layers. */
export class Rootfs {
  /** The root directory (its entry is synthetic, and it implicit, unless a layer has `./`). */
  readonly root: RootfsNode = dirNode("", -1, true);
  readonly #merger: LayerMerger<RootfsNode>;

  constructor() {
    const root = this.root;
    this.#merger = new LayerMerger<RootfsNode>({
      root,
      child: (dir, name) => dir.children!.get(name),
      names: (dir) => dir.children!.keys(),
      isDirectory: (node) => node.children !== undefined,
      symlinkTarget: (node) => {
        const inode = node.inode ?? node;
        return inode.entry.kind === "symlink" ? inode.entry.linkname : undefined;
      },
      layerOf: (node) => node.layer,
      setRoot: (entry) => {
        root.entry = entry;
        delete root.implicit;
      },
      remove: (dir, name) => dir.children!.delete(name),
      implicitDirectory: (dir, name, layer, path) => {
        const made = dirNode(path, layer, true);
        dir.children!.set(name, made);
        return made;
      },
      directory: (dir, name, existing, entry, layer) => {
        if (existing) {
          existing.entry = entry; // metadata from the upper layer, children kept
          existing.layer = layer;
          delete existing.implicit;
        } else {
          dir.children!.set(name, { entry, size: 0, layer, children: new Map() });
        }
      },
      leaf: (dir, name, entry, object, layer, target) => {
        const node: RootfsNode = { entry, object, size: entry.kind === "file" ? entry.size : 0, layer };
        if (target) {
          const inode = target.inode ?? target;
          node.object = inode.object;
          node.size = inode.size;
          node.inode = inode;
        }
        dir.children!.set(name, node);
      },
    });
  }

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
    if ((node.inode ?? node).entry.kind !== "file") return "not a regular file";
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
   * Looks a path up the way the kernel would with the image's root as `/`:
   * symlinks followed in every component, the last included.
   */
  lookup(path: string): RootfsNode | undefined {
    return this.#merger.resolve(path, { create: false, followLast: true, layer: -1 })?.node;
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
      if (isWhiteout(entry)) this.#merger.whiteout(entry, layer);
    }
    for (const { entry, object } of entries) {
      await yielder.yieldIfDue();
      if (!isWhiteout(entry)) this.#merger.add(entry, object, layer);
    }
  }
}
