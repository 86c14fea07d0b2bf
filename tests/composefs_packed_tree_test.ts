/**
 * The packed composefs tree: entries found, replaced and removed through its
 * hash table as the tree grows past every resize, hardlinks as one inode, the
 * walk in name order, the byte count and its limit; and a packed tree of many
 * entries written as the same image as the same tree built by hand.
 */
import assert from "node:assert/strict";
import { LimitError } from "../src/errors.ts";
import { writeErofs } from "../src/composefs/erofs_writer.ts";
import { type InodeMeta, PackedTree } from "../src/composefs/packed_tree.ts";
import { Directory, inlineFile, meta, symlink } from "../src/composefs/tree.ts";
import { walkPacked } from "../src/composefs/tree_dump.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();
const M: InodeMeta = { mode: 0o755, uid: 0, gid: 0, sec: 1, nsec: 0, xattrs: 0 };

Deno.test("packed tree: lookups, replacements and removals hold across every growth of its tables", () => {
  const tree = new PackedTree(M);
  const dirs = [PackedTree.ROOT];
  for (let d = 0; d < 20; d++) {
    const dir = tree.addDirectory(M);
    tree.link(PackedTree.ROOT, enc.encode(`d${d}`), dir);
    dirs.push(dir);
  }
  const files = new Map<string, number>();
  for (let i = 0; i < 30_000; i++) {
    const dir = dirs[1 + (i % 20)];
    const f = tree.addInlineFile({ ...M, mode: 0o644 }, enc.encode(String(i)));
    tree.link(dir, enc.encode(`f${i}`), f);
    files.set(`${dir}/f${i}`, f);
  }
  for (const [key, f] of files) {
    const [dir, name] = key.split("/");
    assert.equal(tree.child(Number(dir), enc.encode(name)), f, key);
  }
  assert.equal(tree.child(dirs[1], enc.encode("f1")), -1, "f1 is in d1's neighbour");
  // Replace one name, remove another, empty a directory, name an inode twice.
  const replacement = tree.addSymlink({ ...M, mode: 0o777 }, enc.encode("target"));
  tree.link(dirs[1], enc.encode("f0"), replacement);
  assert.equal(tree.child(dirs[1], enc.encode("f0")), replacement);
  assert.ok(tree.unlink(dirs[1], enc.encode("f20")));
  assert.ok(!tree.unlink(dirs[1], enc.encode("f20")), "already gone");
  tree.clear(dirs[2]);
  assert.equal([...tree.entries(dirs[2])].length, 0);
  tree.link(dirs[3], enc.encode("again"), tree.child(dirs[4], enc.encode("f3"))); // f3 is in d4
  assert.equal(tree.child(dirs[3], enc.encode("again")), tree.child(dirs[4], enc.encode("f3")));
  // The walk: name order, parents first, removed entries gone.
  const paths = [...walkPacked(tree)].map((w) => dec.decode(w.path));
  assert.equal(paths[0], "/");
  assert.equal(paths[1], "/d0");
  assert.ok(!paths.includes("/d0/f20") && !paths.some((p) => p.startsWith("/d1/")));
  assert.deepEqual(paths.filter((p) => p.startsWith("/d0/")).slice(0, 3), ["/d0/f0", "/d0/f100", "/d0/f1000"]);
  assert.equal(paths.length, 1 + 20 + 30_000 - 1 - 1500 + 1);
});

Deno.test("packed tree: bad names and fields are refused; it counts its bytes and keeps to a limit", () => {
  const tree = new PackedTree(M);
  for (const bad of ["", ".", "..", "a/b", "a\0b", "x".repeat(256)]) {
    assert.throws(() => tree.link(PackedTree.ROOT, enc.encode(bad), tree.addDirectory(M)), /directory entry name/);
  }
  assert.throws(() => tree.addDirectory({ ...M, uid: 2 ** 32 }), /uid 4294967296 is out of range/);
  assert.throws(() => tree.addDirectory({ ...M, mode: 0o10000 }), /not permission bits/);
  const file = tree.addInlineFile(M, new Uint8Array(0));
  assert.throws(() => tree.link(file, enc.encode("x"), file), /its parent is not a directory/);

  const start = tree.bytes;
  const limited = new PackedTree(M, { limit: start + 100_000, limitName: "--memory-limit (test)" });
  assert.throws(
    () => {
      for (let i = 0;; i++) limited.link(PackedTree.ROOT, enc.encode(`entry-${i}`), limited.addDirectory(M));
    },
    (e) =>
      e instanceof LimitError &&
      /^a composefs tree of \d+ inodes and \d+ entries needs more than --memory-limit \(test\); raise it$/.test(
        e.message,
      ),
  );
  assert.ok(limited.bytes <= start + 100_000, `${limited.bytes} bytes, within the limit`);
});

Deno.test("packed tree: a tree of many entries is written as the same tree built by hand", () => {
  const root = new Directory(meta({ mode: 0o755 }));
  for (let d = 0; d < 30; d++) {
    const dir = new Directory(meta({ mode: 0o750, mtime: { sec: 100 + d, nsec: d } }));
    for (let f = 0; f < 300; f++) {
      dir.set(`file-${f}`, f % 7 ? inlineFile(meta({ uid: f }), String(f)) : symlink(meta(), `../t${f}`));
    }
    root.set(`dir-${d}`, dir);
  }
  const packed = new PackedTree({ mode: 0o755, uid: 0, gid: 0, sec: 0, nsec: 0, xattrs: 0 });
  for (let d = 0; d < 30; d++) {
    const dir = packed.addDirectory({ mode: 0o750, uid: 0, gid: 0, sec: 100 + d, nsec: d, xattrs: 0 });
    // In another order than the hand-built tree's: the image sorts names itself.
    for (let f = 299; f >= 0; f--) {
      const m = { mode: 0o644, uid: f % 7 ? f : 0, gid: 0, sec: 0, nsec: 0, xattrs: 0 };
      const inode = f % 7
        ? packed.addInlineFile(m, enc.encode(String(f)))
        : packed.addSymlink(m, enc.encode(`../t${f}`));
      packed.link(dir, enc.encode(`file-${f}`), inode);
    }
    packed.link(PackedTree.ROOT, enc.encode(`dir-${d}`), dir);
  }
  assert.deepEqual(writeErofs(packed), writeErofs(root));
});
