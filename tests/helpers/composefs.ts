/**
 * Test helper: the composefs test vectors (testdata/composefs: dumpfiles and the
 * images C mkcomposefs 1.0.8 made of them), and checks of an EROFS image against
 * the tree it was made from with erofs-utils (`fsck.erofs --extract`, `dump.erofs`).
 */
import assert from "node:assert/strict";
import { parseDumpfile } from "../../src/composefs/dumpfile.ts";
import { type ImageTree, packTree } from "../../src/composefs/erofs_writer.ts";
import { PackedTree } from "../../src/composefs/packed_tree.ts";
import {
  device,
  Directory,
  externalFile,
  inlineFile,
  type Inode,
  type Meta,
  symlink,
  Xattrs,
} from "../../src/composefs/tree.ts";
import { treeFromDump, walkPacked } from "../../src/composefs/tree_dump.ts";
import { describeTree, type TreeNode } from "./tree.ts";
import { sha256 } from "../../src/util/digest.ts";
import { run } from "./interop.ts";

/** Where the vectors are. */
export const VECTORS = new URL("../../testdata/composefs/", import.meta.url).pathname;

/** The names of the vectors: `X` for each `X.dump`. */
export function vectorNames(): string[] {
  return [...Deno.readDirSync(VECTORS)].filter((e) => e.name.endsWith(".dump")).map((e) => e.name.slice(0, -5))
    .sort();
}

/** The tree of vector `name`'s dumpfile. */
export function vectorTree(name: string): PackedTree {
  return treeFromDump(parseDumpfile(Deno.readFileSync(`${VECTORS}${name}.dump`)));
}

/** The fs-verity digests (and sizes) expected.json gives for each image. */
export function expectedDigests(): Record<string, { fsverity_sha256: string; bytes: number }> {
  return JSON.parse(Deno.readTextFileSync(`${VECTORS}expected.json`));
}

/** A path of the tree as the extracted files are named (Deno paths are strings; names here are UTF-8 or ASCII). */
function pathString(p: Uint8Array): string {
  return new TextDecoder().decode(p).slice(1);
}

/** Inode `id` of a packed tree as an object of the tree built by hand (a directory without its entries). */
export function inodeObject(tree: PackedTree, id: number): Inode {
  const m: Meta = {
    mode: tree.mode(id),
    uid: tree.uid(id),
    gid: tree.gid(id),
    mtime: { sec: tree.sec(id), nsec: tree.nsec(id) },
    xattrs: new Xattrs(),
  };
  for (const x of tree.xattrSet(tree.xattrs(id))) m.xattrs.set(x.name, x.value);
  const kind = tree.kind(id);
  switch (kind) {
    case "directory":
      return new Directory(m);
    case "file":
      return tree.isExternal(id)
        ? externalFile(m, tree.size(id), tree.digest(id) ?? new Uint8Array(32), tree.payload(id) ?? "")
        : inlineFile(m, tree.content(id)!.slice());
    case "symlink":
      return symlink(m, tree.target(id).slice());
    case "chardev":
    case "blockdev":
      return device(m, kind, tree.rdev(id));
    default:
      return { type: kind, meta: m };
  }
}

function rdevOf(i: Inode): number {
  return i.type === "chardev" || i.type === "blockdev" ? i.rdev : 0;
}

/**
 * What `describeTree` (owner, mtime) should see for `root` once the image is
 * extracted by fsck.erofs: whiteouts are empty regular files (the writer escapes
 * them), the root has the 256 whiteout devices, external files have no data in the
 * image (`value` "external"), and permissions lose setuid/setgid (fsck chowns after
 * chmod).
 */
export function extractedDescription(tree: ImageTree): Record<string, TreeNode> {
  const t = packTree(tree);
  const out: Record<string, TreeNode> = {};
  for (const { path, inode } of walkPacked(t)) {
    if (inode === PackedTree.ROOT) continue;
    out[pathString(path)] = describeInode(inodeObject(t, inode), { external: "external", modeMask: 0o1777 });
  }
  const root = inodeObject(t, PackedTree.ROOT);
  for (let i = 0; i < 256; i++) {
    const name = i.toString(16).padStart(2, "0");
    if (t.child(PackedTree.ROOT, new TextEncoder().encode(name)) >= 0) continue;
    out[name] = {
      type: "chardev",
      mode: 0o644,
      value: "0,0",
      owner: `${root.meta.uid}:${root.meta.gid}`,
      mtime: mtimeMs(root),
    };
  }
  return sortKeys(out);
}

/** Options of {@link describeInode}. */
interface DescribeOptions {
  /** What `value` an external file gets (its content is not in the image). */
  external: string | ((i: Inode) => string);
  modeMask: number;
}

/** The mtime in milliseconds as Deno's stat gives it (truncated toward zero). */
function mtimeMs(i: Inode): number {
  const { sec, nsec } = i.meta.mtime;
  return Number((BigInt(sec) * 1_000_000_000n + BigInt(nsec)) / 1_000_000n);
}

/** An inode as `describeTree` describes a file (with `owner` and `mtime`). */
export function describeInode(i: Inode, o: DescribeOptions): TreeNode {
  const base = { mode: i.meta.mode & o.modeMask, owner: `${i.meta.uid}:${i.meta.gid}`, mtime: mtimeMs(i) };
  switch (i.type) {
    case "directory":
      return { type: "dir", ...base };
    case "file":
      return {
        type: "file",
        ...base,
        value: i.content ? sha256(i.content) : typeof o.external === "string" ? o.external : o.external(i),
      };
    case "symlink":
      return { type: "symlink", ...base, mode: 0, value: new TextDecoder().decode(i.target) };
    case "chardev":
    case "blockdev": {
      const rdev = rdevOf(i);
      if (i.type === "chardev" && rdev === 0) return { type: "file", ...base, value: sha256(new Uint8Array(0)) };
      return { type: i.type, ...base, value: `${(rdev >> 8) & 0xfff},${(rdev & 0xff) | ((rdev >> 12) & 0xfff00)}` };
    }
    case "fifo":
      return { type: "fifo", ...base };
    case "socket":
      return { type: "other", ...base };
  }
}

function sortKeys<T>(o: Record<string, T>): Record<string, T> {
  return Object.fromEntries(Object.entries(o).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/**
 * Checks `image` with erofs-utils: `fsck.erofs --extract` accepts it and extracts
 * exactly the tree `root` describes (see {@link extractedDescription}), and
 * `dump.erofs` reads its superblock and reports `inodes` inodes.
 */
export async function checkWithErofsUtils(image: Uint8Array, root: ImageTree, inodes: number): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "composefs-erofs-" });
  try {
    const file = `${dir}/image.erofs`;
    await Deno.writeFile(file, image);
    await run("fsck.erofs", file);
    await run("fsck.erofs", `--extract=${dir}/x`, file);
    const got = await describeTree(`${dir}/x`, { owner: true, mtime: true });
    for (const node of Object.values(got)) node.mode &= 0o1777;
    const want = extractedDescription(root);
    // fsck.erofs writes no data for an external file (its chunks are holes).
    for (const [path, node] of Object.entries(want)) {
      if (node.value === "external" && got[path]?.type === "file") got[path].value = "external";
    }
    assert.deepEqual(got, want);
    const sb = await run("dump.erofs", "-s", file);
    assert.match(sb, new RegExp(`Filesystem inode count:\\s+${inodes}\\b`));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** The number of inodes an image of `root` has: distinct inodes, plus the root's whiteout devices. */
export function inodeCount(tree: ImageTree): number {
  const t = packTree(tree);
  const seen = new Set<number>();
  for (const { inode } of walkPacked(t)) seen.add(inode);
  let stubs = 0;
  for (let i = 0; i < 256; i++) {
    if (t.child(PackedTree.ROOT, new TextEncoder().encode(i.toString(16).padStart(2, "0"))) < 0) stubs++;
  }
  return seen.size + stubs;
}
