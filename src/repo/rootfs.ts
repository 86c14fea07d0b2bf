/**
 * An image's merged root filesystem, computed from its stored layers: layers
 * applied in order, `.wh.NAME` and `.wh..wh..opq` whiteouts honoured, hardlinks
 * resolved to the content they share. Used as the source of tar-diff deltas and
 * to check out images. Holds metadata only; contents stay in the object store.
 *
 * @module
 */
import { FormatError } from "../errors.ts";
import type { TarEntry } from "../tar/header.ts";
import { baseName, parentOf } from "../tar/path.ts";
import type { Digest } from "../util/digest.ts";
import { layerEntries } from "./layer_reader.ts";
import type { Repository } from "./repository.ts";

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
}

/** Why a path is not a usable regular file. */
export type LookupFailure = "missing" | "not a regular file";

function dirNode(path: string, layer: number): RootfsNode {
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
  };
}

/** The merged filesystem of a stack of layers. */
export class Rootfs {
  /** The root directory (its entry is synthetic unless a layer has `./`). */
  readonly root: RootfsNode = dirNode("", -1);

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

  /** The directory node at `path`, created (implicitly, replacing non-directories) when absent. */
  #dir(path: string, layer: number): RootfsNode {
    let node = this.root;
    if (path === "") return node;
    let at = "";
    for (const part of path.split("/")) {
      at = at ? `${at}/${part}` : part;
      let child = node.children!.get(part);
      if (!child || !child.children) {
        child = dirNode(at, layer);
        node.children!.set(part, child);
      }
      node = child;
    }
    return node;
  }

  /** Applies one layer's entries on top of what is there. */
  apply(entries: { entry: TarEntry; object?: string }[], layer: number): void {
    // Whiteouts hide what lower layers had, whatever their position in this layer.
    for (const { entry } of entries) {
      const name = baseName(entry.path);
      if (!name.startsWith(WHITEOUT_PREFIX)) continue;
      const parent = this.get(parentOf(entry.path));
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
      if (entry.path === "" || baseName(entry.path).startsWith(WHITEOUT_PREFIX)) {
        if (entry.path === "" && entry.kind === "dir") this.root.entry = entry;
        continue;
      }
      const parent = this.#dir(parentOf(entry.path), layer);
      const name = baseName(entry.path);
      const existing = parent.children!.get(name);
      if (entry.kind === "dir") {
        if (existing?.children) {
          existing.entry = entry; // metadata from the upper layer, children kept
          existing.layer = layer;
        } else {
          parent.children!.set(name, { entry, size: 0, layer, children: new Map() });
        }
        continue;
      }
      let node: RootfsNode = { entry, object, size: entry.kind === "file" ? entry.size : 0, layer };
      if (entry.kind === "hardlink") {
        const target = this.get(entry.linkname);
        if (!target || (target.entry.kind !== "file" && target.entry.kind !== "hardlink")) {
          throw new FormatError(
            `hardlink ${JSON.stringify(entry.path)} points to ${
              JSON.stringify(entry.linkname)
            }, which is not a regular file`,
          );
        }
        node = { ...node, object: target.object, size: target.size };
      }
      parent.children!.set(name, node);
    }
  }
}

/**
 * Builds the merged filesystem of layers `diffIds` (bottom first) from the
 * repository. The tree is complete; callers that exclude paths as delta sources
 * (e.g. `sysroot/ostree/`) filter when they choose, since hardlinks elsewhere may
 * share those files' content.
 */
export async function loadRootfs(repo: Repository, diffIds: Digest[]): Promise<Rootfs> {
  const fs = new Rootfs();
  for (let i = 0; i < diffIds.length; i++) {
    const entries = [];
    for await (const e of layerEntries(repo, diffIds[i])) entries.push(e);
    try {
      fs.apply(entries, i);
    } catch (e) {
      if (e instanceof FormatError) e.message = `layer ${diffIds[i]}: ${e.message}`;
      throw e;
    }
  }
  return fs;
}
