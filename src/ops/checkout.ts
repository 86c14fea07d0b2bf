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
 * Regular files are copied from the object store, each object read, hashed
 * and written in one pass and checked against its name (its SHA-256) before
 * the file counts as written, so a damaged object never reaches the checkout.
 * With `hardlink` they are hard-linked to the objects instead, each object
 * hashed once first (then the files share the object's inode: read-only use,
 * and their mode, owner, times and xattrs are the object's).
 *
 * A failure (a missing or damaged object, a full disk, a name the filesystem
 * refuses) waits for the copies in flight, removes what the checkout wrote (a
 * directory it made; with --force, the paths it added: what it replaced is
 * gone) and is reported as one error naming the image path.
 *
 * Metadata: modes always; mtimes always (directories after their contents);
 * ownership when running as root (otherwise, as umoci --rootless does, files
 * are the user's and each entry's real owner is recorded in a
 * `user.rootlesscontainers` xattr); xattrs and device nodes where the system
 * allows. What could not be applied is counted in the result, not hidden.
 *
 * @module
 */
import { DeltashipError, FileSystemError, InvalidArgumentError } from "../errors.ts";
import { type ProgressSink, silentProgress } from "../util/progress.ts";
import type { Cleanups } from "../util/cleanups.ts";
import { MetadataWriter, type NotApplied } from "./checkout_metadata.ts";
import { DiskNames } from "./checkout_names.ts";
import type { ImageRecord, Repository } from "../repo/repository.ts";
import type { Rootfs, RootfsNode } from "../oci/rootfs.ts";
import { loadRootfs } from "../repo/layer_reader.ts";
import { lstatOrUndefined } from "../util/fs.ts";
import { Yielder } from "../util/yielder.ts";
import { CopyBuffers, copyObject, missingObject, type ObjectCopy } from "../repo/object_copy.ts";
import { knownOsCode, osCondition } from "../util/os_error.ts";
import { ellipsize } from "../util/text.ts";

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
  const writer = new Writer(repo, tree, dir, options);
  const undo = async () => {
    await writer.settle(); // no copy may still be writing while its directory goes
    if (state === "created") await Deno.remove(dir, { recursive: true }).catch(() => {});
    else if (state === "empty") await emptyDir(dir);
    else await writer.removeAdded();
  };
  using _interrupted = options.cleanups?.add(undo);
  try {
    return await writer.run();
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
    throw new InvalidArgumentError(`${dir} exists and is not a directory`);
  }
  for await (const _ of Deno.readDir(dir)) {
    if (force) return "forced";
    throw new InvalidArgumentError(
      `${dir} is not empty; check out into an empty or new directory, or pass --force to write over its contents`,
    );
  }
  return "empty";
}

async function emptyDir(dir: string): Promise<void> {
  for await (const e of Deno.readDir(dir)) await Deno.remove(`${dir}/${e.name}`, { recursive: true }).catch(() => {});
}

/** True when running as root (ownership, device nodes and every xattr can be applied). */
/** Most file copies in flight at once. */
const PARALLEL_COPIES = 8;

/** The state of one checkout in progress. */
class Writer {
  readonly meta: MetadataWriter;
  /** The path each inode (a file, symlink, device or fifo node) was first written at. */
  readonly written = new Map<RootfsNode, string>();
  /** Where each path is written (names that are not UTF-8 are renamed to their bytes at the end). */
  readonly names: DiskNames;
  readonly result: CheckoutResult;
  readonly progress: ProgressSink;
  /** File copies in flight. */
  #copying = new Set<Promise<void>>();
  /** The first failure of a copy; later ones are dropped (one error is reported). */
  #failed: { error: unknown } | undefined;
  /** Copy buffers not in use, a pair per copy in flight. */
  #buffers: CopyBuffers[] = [];
  /** Objects hashed and found intact (for --hardlink), by hex: each is read once per run. */
  #verified = new Map<string, Promise<void>>();
  /** Paths this checkout created whose parent it did not create (what undoing --force removes). */
  #added: string[] = [];
  #addedDirs = new Set<string>();

  constructor(
    readonly repo: Repository,
    readonly tree: Rootfs,
    readonly dir: string,
    readonly options: CheckoutOptions,
  ) {
    this.progress = options.progress ?? silentProgress;
    this.names = new DiskNames(dir);
    const result: CheckoutResult = {
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
    this.result = result;
    this.meta = new MetadataWriter(result.notApplied, () => result.devices++);
  }

  async run(): Promise<CheckoutResult> {
    try {
      const nodes = [...this.tree.walk()];
      const total = nodes.reduce((a, [, n]) => a + (n.entry.kind === "file" ? n.size : 0), 0);
      this.progress.start("checkout", "checkout", total);
      const files: [string, RootfsNode][] = []; // the first name of each file's inode
      const links: [string, RootfsNode][] = []; // further names of an inode
      const symlinks: [string, RootfsNode][] = [];
      const yielder = new Yielder({ every: 64 }); // some entries (devices, fifos) take synchronous calls only
      try {
        // Directories and device nodes in tree order (parents first); the rest is sorted out. A hardlink is
        // another name of its inode, whatever that is (a file, symlink, device or fifo), as umoci links.
        for (const [path, node] of nodes) {
          await yielder.yieldIfDue();
          const inode = node.inode ?? node;
          const kind = inode.entry.kind;
          if (this.options.force) await this.#at(path, node, () => this.#clearWay(this.names.disk(path), node));
          if (kind === "symlink") symlinks.push([path, node]);
          else if (this.written.has(inode)) links.push([path, node]);
          else if (kind !== "file") await this.#at(path, node, () => this.#create(path, node));
          else {
            this.written.set(inode, this.names.disk(path));
            files.push([path, inode]);
          }
        }
        // Contents, biggest first: the long copies start early and overlap the many small ones.
        files.sort((a, b) => b[1].size - a[1].size);
        for (const [path, inode] of files) {
          await this.#inBackground(path, inode, () => this.#content(this.names.disk(path), path, inode));
          this.result.files++;
        }
      } finally {
        await this.settle(); // let every copy finish (or fail) before going on or cleaning up
      }
      this.#throwIfFailed();
      for (const [path, node] of links) await this.#link(path, node);
      // Symlinks last: nothing is created after them, so nothing goes through them.
      for (const [path, node] of symlinks) {
        const inode = node.inode ?? node;
        if (this.written.has(inode)) {
          await this.#link(path, node);
          continue;
        }
        await this.#at(path, node, async () => {
          await this.names.symlink(inode.entry.linkname, path);
          this.written.set(inode, this.names.disk(path));
          this.#addedPath(path, false);
        });
        this.result.symlinks++;
      }
      // Metadata children first, so directory mtimes are not disturbed afterwards.
      for (let i = nodes.length - 1; i >= 0; i--) {
        const [path, node] = nodes[i];
        this.#atSync(path, node, () => this.#metadata(this.names.disk(path), node));
        await yielder.yieldIfDue();
      }
      if (!this.tree.root.implicit) this.#atSync("", this.tree.root, () => this.#metadata(this.dir, this.tree.root));
      this.names.finish((path) => {
        const node = this.tree.get(path);
        return node && !node.implicit ? node.entry.mtime : undefined;
      });
      this.result.entries = nodes.length;
      this.progress.finish("checkout", "done");
      this.result.notes.push(...this.meta.notes());
      return this.result;
    } finally {
      this.meta.close();
      this.names.close();
    }
  }

  /** Makes `path` another name of the inode `node` shares, written already. */
  async #link(path: string, node: RootfsNode): Promise<void> {
    await this.#at(path, node, () => Deno.link(this.written.get(node.inode ?? node)!, this.names.disk(path)));
    this.#addedPath(path, false);
    this.result.hardlinks++;
  }

  /** Resolves once no copy is in flight any more (each has finished or failed). */
  async settle(): Promise<void> {
    while (this.#copying.size) await Promise.all(this.#copying);
  }

  /** Removes what this checkout added to a directory that had contents (--force). */
  async removeAdded(): Promise<void> {
    for (const path of this.#added.reverse()) {
      const target = this.names.disk(path);
      const st = await lstatOrUndefined(target).catch(() => undefined);
      await Deno.remove(target, { recursive: st?.isDirectory === true }).catch(() => {});
    }
    this.#added = [];
  }

  /** Notes that `path` was created (only the topmost of what was created is kept). */
  #addedPath(path: string, dir: boolean): void {
    const slash = path.lastIndexOf("/");
    if (!(slash > 0 && this.#addedDirs.has(path.slice(0, slash)))) this.#added.push(path);
    if (dir) this.#addedDirs.add(path);
  }

  /** Runs `step` for the entry at `path`; a file-system failure becomes an error naming the entry. */
  async #at<T>(path: string, node: RootfsNode, step: () => Promise<T>): Promise<T> {
    try {
      return await step();
    } catch (e) {
      throw this.#entryError(e, path, node);
    }
  }

  #atSync<T>(path: string, node: RootfsNode, step: () => T): T {
    try {
      return step();
    } catch (e) {
      throw this.#entryError(e, path, node);
    }
  }

  /** A known OS failure (no space, name too long, ...) at an entry, as one line naming it. */
  #entryError(e: unknown, path: string, node: RootfsNode): unknown {
    const code = knownOsCode(e);
    if (e instanceof DeltashipError || code === undefined) return e;
    const { kind, linkname } = node.entry;
    const name = `/${ellipsize(path, 121)}`;
    const what = kind === "symlink"
      ? `symlink ${name} -> ${ellipsize(linkname, 61)}${linkname.length > 61 ? ` (${linkname.length} characters)` : ""}`
      : kind === "dir"
      ? `directory ${name}`
      : name;
    const hint = code === "ENOSPC" || code === "EDQUOT" ? "; free some space, or check out elsewhere" : "";
    return new FileSystemError(
      `cannot check out ${what} into ${this.dir}: ${osCondition(code)}${hint}`,
      this.names.disk(path),
      code,
      { cause: e },
    );
  }

  /**
   * Runs a file's copy while the walk goes on (several files are copied at
   * once), at most {@link PARALLEL_COPIES} at a time. The copy is started here,
   * and only when no earlier one has failed, so every copy is awaited; the
   * first failure stops the walk and is rethrown once every copy has settled.
   */
  async #inBackground(path: string, inode: RootfsNode, copy: () => Promise<void>): Promise<void> {
    this.#throwIfFailed();
    const settled: Promise<void> = this.#at(path, inode, copy).then(
      () => {},
      (error) => {
        this.#failed ??= { error };
      },
    ).finally(() => this.#copying.delete(settled));
    this.#copying.add(settled);
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

  /** Creates a directory or device node (files, links and symlinks are made in their own passes). */
  async #create(path: string, node: RootfsNode): Promise<void> {
    const target = this.names.disk(path);
    const inode = node.inode ?? node;
    const { entry } = inode;
    switch (entry.kind) {
      case "dir":
        if (!(this.options.force && (await lstatOrUndefined(target))?.isDirectory)) {
          await Deno.mkdir(target, { mode: 0o700 });
          this.#addedPath(path, true);
        }
        this.result.directories++;
        return;
      case "chardev":
      case "blockdev":
      case "fifo":
        this.meta.device(target, entry);
        if (lstatExists(target)) {
          this.written.set(inode, target);
          this.#addedPath(path, false);
        }
        return;
      default:
        this.meta.skip("other", `entries of unsupported kinds skipped (e.g. ${JSON.stringify(entry.path)})`);
    }
  }

  /** Writes a file's content: a verified copy (or link) of its object, or an empty file. */
  async #content(target: string, path: string, node: RootfsNode): Promise<void> {
    if (node.object === undefined) {
      await Deno.writeFile(target, new Uint8Array(0), { createNew: true, mode: 0o600 });
      this.#addedPath(path, false);
      return;
    }
    if (this.options.hardlink) {
      await this.#verifyOnce(node.object, path, node.size);
      try {
        await Deno.link(this.repo.objects.path(node.object), target);
      } catch (e) {
        if (e instanceof Deno.errors.NotFound) throw missingObject(node.object);
        if ((e as { code?: string }).code === "EXDEV") {
          throw new InvalidArgumentError(
            `--hardlink needs ${this.dir} on the same filesystem as the repository (${this.repo.root}); check out without it`,
          );
        }
        throw e;
      }
      this.#addedPath(path, false);
    } else {
      await this.#copyVerified(node.object, target, path, node.size);
    }
    this.result.bytes += node.size;
    this.progress.advance("checkout", node.size);
  }

  /** Copies object `hex` (of `size` bytes) to `target`, a new file, verified (see object_copy.ts). */
  async #copyVerified(hex: string, target: string, path: string, size: number): Promise<void> {
    const copy: ObjectCopy = { object: this.repo.objects.path(hex), hex, size, path, target };
    this.#addedPath(path, false); // before it exists: an undo must not miss it
    await this.#withBuffers((buffers) => copyObject(copy, buffers));
  }

  /** Checks object `hex` once per run (for --hardlink: the link will share its bytes). */
  #verifyOnce(hex: string, path: string, size: number): Promise<void> {
    let done = this.#verified.get(hex);
    if (!done) {
      const copy: ObjectCopy = { object: this.repo.objects.path(hex), hex, size, path };
      done = this.#withBuffers((buffers) => copyObject(copy, buffers));
      this.#verified.set(hex, done);
    }
    return done;
  }

  /** Runs `fn` with a pair of copy buffers, reused across copies (one pair per copy in flight). */
  async #withBuffers(fn: (buffers: CopyBuffers) => Promise<void>): Promise<void> {
    const buffers = this.#buffers.pop() ?? new CopyBuffers();
    try {
      await fn(buffers);
    } finally {
      this.#buffers.push(buffers);
    }
  }

  /** Applies owner, mode, xattrs and times to what was written at `target`. */
  #metadata(target: string, node: RootfsNode): void {
    const inode = node.inode ?? node;
    const kind = inode.entry.kind;
    if (kind === "pax-global" || kind === "other") return;
    if (kind === "dir" && node.implicit) {
      Deno.chmodSync(target, 0o755); // as a directory made by mkdir -p; owner and times as they are
      return;
    }
    if (kind !== "dir") {
      if (this.written.get(inode) !== target) return; // another name of an inode done already, or one not made
      if (this.options.hardlink && kind === "file" && inode.object !== undefined) return; // the object's own inode
    }
    this.meta.apply(target, inode.entry, kind === "symlink");
  }
}

function lstatExists(path: string): boolean {
  try {
    Deno.lstatSync(path);
    return true;
  } catch {
    return false;
  }
}
