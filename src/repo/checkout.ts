/**
 * Checking an image out: its merged root filesystem (see rootfs.ts: whiteouts
 * applied, symlinks in paths resolved inside the root, hardlinks grouped by
 * inode) written into a directory, as `umoci raw unpack` would leave it.
 *
 * Never writes outside the directory. Every path of the merged tree is a chain
 * of real directories, created parents first; symlinks are created last, after
 * everything else, so no creation ever goes through one, and metadata is set
 * with calls that do not follow them (lchown, lutimes, lsetxattr; chmod only on
 * what is not a symlink). With --force over existing contents, whatever is in
 * the way of a path (a symlink included) is removed, never followed.
 *
 * Regular files are copied from the object store with the kernel's copy
 * (`Deno.copyFile`), or hard-linked to the objects with `hardlink` (then they
 * share the object's inode: read-only use, and their mode, owner, times and
 * xattrs are the object's).
 *
 * Metadata: modes always; mtimes always (directories after their contents);
 * ownership when running as root (otherwise, as umoci --rootless does, files
 * are the user's and each entry's real owner is recorded in a
 * `user.rootlesscontainers` xattr); xattrs and device nodes where the system
 * allows. What could not be applied is counted in the result, not hidden.
 *
 * @module
 */
import fs from "node:fs";
import { RepositoryError, UsageError } from "../errors.ts";
import type { TarEntry } from "../tar/header.ts";
import { type ProgressSink, silentProgress } from "../util/progress.ts";
import { openPosix, type Posix, S_IFBLK, S_IFCHR, S_IFIFO } from "../util/posix.ts";
import type { Cleanups } from "../util/cleanups.ts";
import type { ImageRecord, Repository } from "./repository.ts";
import { loadRootfs, type Rootfs, type RootfsNode } from "./rootfs.ts";
import { lstatOrUndefined } from "../util/fs.ts";
import { Yielder } from "../util/yielder.ts";

/** How to check out. */
export interface CheckoutOptions {
  /** Write into a non-empty directory, replacing what is in the way. */
  force?: boolean;
  /** Hard-link regular files to the repository's objects instead of copying them. */
  hardlink?: boolean;
  progress?: ProgressSink;
  /** Where to register the undo of a half-made checkout, for an interrupt. */
  cleanups?: Cleanups;
}

/** Things that could not be applied, by kind. */
export interface NotApplied {
  /** Entries whose owner could not be set (not root, or chown failed). */
  ownership: number;
  /** Device nodes and fifos not created. */
  devices: number;
  /** Extended attributes not set. */
  xattrs: number;
  /** Entries of kinds a filesystem cannot hold (skipped). */
  other: number;
}

/** What a checkout wrote. */
export interface CheckoutResult {
  dir: string;
  /** Paths written (directories, files, links, nodes), the root excluded. */
  entries: number;
  files: number;
  /** Extra names of files written as hard links to another path. */
  hardlinks: number;
  symlinks: number;
  directories: number;
  devices: number;
  /** Bytes of file content written (once per inode). */
  bytes: number;
  notApplied: NotApplied;
  /** One line per kind of thing not applied, saying why. */
  notes: string[];
}

/** Checks `record` out into `dir`; see the module documentation. */
export async function checkout(
  repo: Repository,
  record: ImageRecord,
  dir: string,
  options: CheckoutOptions = {},
): Promise<CheckoutResult> {
  const tree = await loadRootfs(repo, record.layers.map((l) => l.diffId));
  const state = await prepareDir(dir, options.force === true);
  const undo = async () => {
    if (state === "created") await Deno.remove(dir, { recursive: true }).catch(() => {});
    else if (state === "empty") await emptyDir(dir);
  };
  using _interrupted = options.cleanups?.add(undo);
  try {
    return await new Writer(repo, tree, dir, options).run();
  } catch (e) {
    await undo();
    throw e;
  }
}

/** Makes sure `dir` can be written into; says whether it was made, empty, or had contents. */
async function prepareDir(dir: string, force: boolean): Promise<"created" | "empty" | "forced"> {
  const st = await lstatOrUndefined(dir);
  if (st === undefined) {
    await Deno.mkdir(dir, { recursive: true });
    return "created";
  }
  if (!(st.isDirectory || (st.isSymlink && (await Deno.stat(dir)).isDirectory))) {
    throw new UsageError(`${dir} exists and is not a directory`);
  }
  for await (const _ of Deno.readDir(dir)) {
    if (force) return "forced";
    throw new UsageError(
      `${dir} is not empty; check out into an empty or new directory, or pass --force to write over its contents`,
    );
  }
  return "empty";
}

async function emptyDir(dir: string): Promise<void> {
  for await (const e of Deno.readDir(dir)) await Deno.remove(`${dir}/${e.name}`, { recursive: true }).catch(() => {});
}

/** True when running as root (ownership, device nodes and every xattr can be applied). */
function runningAsRoot(): boolean {
  try {
    return Deno.uid() === 0;
  } catch {
    return false; // no permission to ask: assume not
  }
}

/** Most file copies in flight at once. */
const PARALLEL_COPIES = 8;

/** The state of one checkout in progress. */
class Writer {
  readonly posix: Posix | undefined = openPosix();
  readonly root = runningAsRoot();
  /** The path each inode (file node) was first written at. */
  readonly written = new Map<RootfsNode, string>();
  readonly result: CheckoutResult;
  readonly progress: ProgressSink;
  #reasons = new Map<keyof NotApplied, string>();
  /** File copies in flight, and each inode's copy (links to it wait for it). */
  #copying = new Set<Promise<void>>();
  #copied = new Map<RootfsNode, Promise<void>>();
  #failed: { error: unknown } | undefined;

  constructor(
    readonly repo: Repository,
    readonly tree: Rootfs,
    readonly dir: string,
    readonly options: CheckoutOptions,
  ) {
    this.progress = options.progress ?? silentProgress;
    this.result = {
      dir,
      entries: 0,
      files: 0,
      hardlinks: 0,
      symlinks: 0,
      directories: 0,
      devices: 0,
      bytes: 0,
      notApplied: { ownership: 0, devices: 0, xattrs: 0, other: 0 },
      notes: [],
    };
  }

  #skip(kind: keyof NotApplied, reason: string): void {
    this.result.notApplied[kind]++;
    if (!this.#reasons.has(kind)) this.#reasons.set(kind, reason);
  }

  async run(): Promise<CheckoutResult> {
    try {
      const nodes = [...this.tree.walk()];
      const total = nodes.reduce((a, [, n]) => a + (n.entry.kind === "file" ? n.size : 0), 0);
      this.progress.start("checkout", "checkout", total);
      const symlinks: [string, RootfsNode][] = [];
      const yielder = new Yielder({ every: 64 }); // some entries (devices, fifos) take synchronous calls only
      try {
        for (const [path, node] of nodes) {
          await yielder.yieldIfDue();
          const target = `${this.dir}/${path}`;
          if (this.options.force) await this.#clearWay(target, node);
          if (node.entry.kind === "symlink") symlinks.push([target, node]);
          else await this.#create(target, node);
        }
      } finally {
        await Promise.all(this.#copying); // let every copy finish (or fail) before going on or cleaning up
      }
      this.#throwIfFailed();
      // Symlinks last: nothing is created after them, so nothing goes through them.
      for (const [target, node] of symlinks) {
        await Deno.symlink(node.entry.linkname, target);
        this.result.symlinks++;
      }
      // Metadata children first, so directory mtimes are not disturbed afterwards.
      for (let i = nodes.length - 1; i >= 0; i--) {
        this.#metadata(`${this.dir}/${nodes[i][0]}`, nodes[i][1]);
        await yielder.yieldIfDue();
      }
      if (!this.tree.root.implicit) this.#metadata(this.dir, this.tree.root);
      this.result.entries = nodes.length;
      this.progress.finish("checkout", "done");
      for (const [kind, reason] of this.#reasons) {
        this.result.notes.push(`${this.result.notApplied[kind]} ${reason}`);
      }
      return this.result;
    } finally {
      this.posix?.close();
    }
  }

  /**
   * Lets a file's copy run while the walk goes on (the kernel copies several
   * files at once), at most {@link PARALLEL_COPIES} at a time. The first failure
   * stops the walk; it is rethrown once every copy has settled.
   */
  async #inBackground(inode: RootfsNode, copy: Promise<void>): Promise<void> {
    this.#throwIfFailed();
    const settled: Promise<void> = copy.then(
      () => {},
      (error) => {
        this.#failed ??= { error };
      },
    ).finally(() => this.#copying.delete(settled));
    this.#copying.add(settled);
    this.#copied.set(inode, settled);
    if (this.#copying.size >= PARALLEL_COPIES) await Promise.race(this.#copying);
    this.#throwIfFailed();
  }

  #throwIfFailed(): void {
    if (this.#failed) throw this.#failed.error;
  }

  /** With --force: removes what is at `target` unless it is a directory and so is `node`. */
  async #clearWay(target: string, node: RootfsNode): Promise<void> {
    const st = await lstatOrUndefined(target);
    if (!st) return;
    if (st.isDirectory && node.children) return;
    await Deno.remove(target, { recursive: true });
  }

  async #create(target: string, node: RootfsNode): Promise<void> {
    const { entry } = node;
    switch (entry.kind) {
      case "dir":
        if (!(this.options.force && (await lstatOrUndefined(target))?.isDirectory)) {
          await Deno.mkdir(target, { mode: 0o700 });
        }
        this.result.directories++;
        return;
      case "file":
      case "hardlink": {
        const inode = node.inode ?? node;
        const first = this.written.get(inode);
        if (first !== undefined) {
          await this.#copied.get(inode); // the first name must exist before another can link to it
          await Deno.link(first, target);
          this.result.hardlinks++;
          return;
        }
        this.written.set(inode, target);
        await this.#inBackground(inode, this.#content(target, inode));
        this.result.files++;
        return;
      }
      case "chardev":
      case "blockdev":
      case "fifo":
        this.#device(target, entry);
        return;
      default:
        this.#skip("other", `entries of unsupported kinds skipped (e.g. ${JSON.stringify(entry.path)})`);
    }
  }

  /** Writes a file's content: a copy (or link) of its object, or an empty file. */
  async #content(target: string, node: RootfsNode): Promise<void> {
    if (node.object === undefined) {
      await Deno.writeFile(target, new Uint8Array(0), { createNew: true, mode: 0o600 });
      return;
    }
    const object = this.repo.objects.path(node.object);
    try {
      if (this.options.hardlink) await Deno.link(object, target);
      else await Deno.copyFile(object, target);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound && !(await lstatOrUndefined(object))) {
        throw new RepositoryError(`object sha256:${node.object} is missing from the repository; run fsck`);
      }
      if (this.options.hardlink && (e as { code?: string }).code === "EXDEV") {
        throw new UsageError(
          `--hardlink needs ${this.dir} on the same filesystem as the repository (${this.repo.root}); check out without it`,
        );
      }
      throw e;
    }
    this.result.bytes += node.size;
    this.progress.advance("checkout", node.size);
  }

  #device(target: string, entry: TarEntry): void {
    const type = entry.kind === "fifo" ? S_IFIFO : entry.kind === "chardev" ? S_IFCHR : S_IFBLK;
    if (!this.posix) {
      this.#skip("devices", "device nodes and fifos not created (needs Linux and FFI permission)");
      return;
    }
    if (type !== S_IFIFO && !this.root) {
      this.#skip("devices", "device nodes not created (needs root)");
      return;
    }
    try {
      this.posix.mknod(target, type, 0o600, entry.devmajor, entry.devminor);
      this.result.devices++;
    } catch (e) {
      this.#skip("devices", `device nodes and fifos not created (${(e as Error).message})`);
    }
  }

  /** Applies owner, mode, xattrs and times to what was written at `target`. */
  #metadata(target: string, node: RootfsNode): void {
    const kind = node.entry.kind;
    if (kind === "pax-global" || kind === "other") return;
    if (kind === "dir" && node.implicit) {
      Deno.chmodSync(target, 0o755); // as a directory made by mkdir -p; owner and times as they are
      return;
    }
    if (kind === "file" || kind === "hardlink") {
      const inode = node.inode ?? node;
      if (this.written.get(inode) !== target) return; // another name of an inode already done
      if (this.options.hardlink && inode.object !== undefined) return; // the object's own inode: leave it alone
      node = inode;
    }
    if (!(kind === "chardev" || kind === "blockdev" || kind === "fifo") || lstatExists(target)) {
      this.#apply(target, node.entry, kind === "symlink");
    }
  }

  #apply(target: string, entry: TarEntry, symlink: boolean): void {
    if (this.root) {
      try {
        fs.lchownSync(target, entry.uid, entry.gid);
      } catch (e) {
        this.#skip("ownership", `owners not set (${(e as Error).message})`);
      }
    } else if (entry.uid !== 0 || entry.gid !== 0) {
      // Not root: the files are ours, standing for root's. As umoci --rootless does, the
      // real owner is kept in a user.rootlesscontainers xattr (rootlesscontainers.com),
      // where the filesystem allows (never on a symlink).
      let kept = false;
      if (this.posix && !symlink) {
        try {
          this.posix.lsetxattr(target, ROOTLESS_XATTR, rootlessOwner(entry.uid, entry.gid));
          kept = true;
        } catch { /* counted below */ }
      }
      this.#skip(
        "ownership",
        kept ? `owners not set (needs root); recorded in ${ROOTLESS_XATTR} xattrs` : "owners not set (needs root)",
      );
    }
    if (!symlink) Deno.chmodSync(target, entry.mode & 0o7777);
    for (const [name, value] of Object.entries(entry.xattrs)) {
      if (!this.posix) {
        this.#skip("xattrs", "extended attributes not set (needs Linux and FFI permission)");
        continue;
      }
      try {
        this.posix.lsetxattr(target, name, value);
      } catch (e) {
        this.#skip("xattrs", `extended attributes not set (first: ${(e as Error).message})`);
      }
    }
    fs.lutimesSync(target, entry.mtime, entry.mtime);
  }
}

/** The xattr rootless tools keep an entry's real owner in. */
const ROOTLESS_XATTR = "user.rootlesscontainers";

/**
 * The value of {@link ROOTLESS_XATTR}: the protobuf message `Resource { uint32
 * uid = 1; uint32 gid = 2; }`, zero fields left out (proto3).
 */
export function rootlessOwner(uid: number, gid: number): Uint8Array {
  const out: number[] = [];
  const field = (tag: number, v: number) => {
    if (v === 0) return;
    out.push(tag);
    for (; v >= 0x80; v = Math.floor(v / 128)) out.push((v & 0x7f) | 0x80);
    out.push(v);
  };
  field(0x08, uid);
  field(0x10, gid);
  return new Uint8Array(out);
}

function lstatExists(path: string): boolean {
  try {
    Deno.lstatSync(path);
    return true;
  } catch {
    return false;
  }
}
