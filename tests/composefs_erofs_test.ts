/**
 * The EROFS writer: byte-identical to C mkcomposefs 1.0.8 on every test vector
 * (format versions 0 and 1), images whose fs-verity digests are the expected ones,
 * and images of trees beyond the vectors that erofs-utils read back as the tree.
 */
import assert from "node:assert/strict";
import { writeErofs } from "../src/composefs/erofs_writer.ts";
import { fsverityHex } from "../src/composefs/fsverity.ts";
import {
  device,
  Directory,
  externalFile,
  inlineFile,
  type Meta,
  meta,
  symlink,
  Xattrs,
} from "../src/composefs/tree.ts";
import { FormatError } from "../src/errors.ts";
import {
  checkWithErofsUtils,
  expectedDigests,
  inodeCount,
  vectorNames,
  VECTORS,
  vectorTree,
} from "./helpers/composefs.ts";
import { noise } from "./helpers/data.ts";
import { haveTools, run } from "./helpers/interop.ts";

const EROFS_UTILS = ["fsck.erofs", "dump.erofs"];

for (const name of vectorNames()) {
  for (const version of [0, 1] as const) {
    Deno.test(`erofs writer: ${name} v${version} is byte-identical to mkcomposefs 1.0.8`, () => {
      const want = Deno.readFileSync(`${VECTORS}${name}.v${version}.img`);
      const got = writeErofs(vectorTree(name), { version });
      assert.equal(got.length, want.length, "image size");
      const first = got.findIndex((b, i) => b !== want[i]);
      assert.equal(first, -1, `first differing byte at offset ${first} (0x${first.toString(16)})`);
      assert.equal(fsverityHex(got), expectedDigests()[`${name}.v${version}.img`].fsverity_sha256);
    });
  }
}

Deno.test({
  name: "erofs writer: erofs-utils read every vector's image back as its tree",
  ignore: !haveTools("erofs-utils check", ...EROFS_UTILS),
  async fn() {
    for (const name of vectorNames()) {
      const tree = vectorTree(name);
      for (const version of [0, 1] as const) {
        await checkWithErofsUtils(writeErofs(tree, { version }), tree, inodeCount(tree));
      }
    }
  },
});

Deno.test({
  name: "erofs writer: the erofs-utils check fails on a damaged image (a directory entry's name changed)",
  ignore: !haveTools("erofs-utils check", ...EROFS_UTILS),
  async fn() {
    const tree = vectorTree("basic");
    const image = writeErofs(tree);
    const at = findBytes(image, new TextEncoder().encode("hostname"));
    assert.ok(at > 0);
    image[at] = 0x48; // "Hostname"
    await assert.rejects(checkWithErofsUtils(image, tree, inodeCount(tree)));
  },
});

function findBytes(haystack: Uint8Array, needle: Uint8Array): number {
  outer: for (let i = 0; i + needle.length <= haystack.length; i++) {
    for (let j = 0; j < needle.length; j++) if (haystack[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}

/** The fields dump.erofs prints for one path of an image. */
async function inodeInfo(image: Uint8Array, path: string): Promise<Record<string, string>> {
  const file = await Deno.makeTempFile({ suffix: ".erofs" });
  try {
    await Deno.writeFile(file, image);
    const out = await run("dump.erofs", `--path=${path}`, file);
    const fields: Record<string, string> = {};
    for (const m of out.matchAll(/([A-Z][A-Za-z -]*?):\s+([^\s:][^\s]*)/g)) fields[m[1].trim()] = m[2];
    return fields;
  } finally {
    await Deno.remove(file);
  }
}

/** A tree with what the vectors do not have: see the test below. */
function edgeTree(): Directory {
  const m = (o: Partial<Meta> = {}) => meta({ mtime: { sec: 1000, nsec: 5 }, ...o });
  const root = new Directory(m({ mode: 0o755 }));
  const a = new Directory(m({ mode: 0o755 }));
  const b = new Directory(m({ mode: 0o755 }));
  const c = new Directory(m({ mode: 0o700 }));
  root.set("a", a).set("c", c);
  a.set("b", b);
  // /c is numbered before /a/b, but /a/b/file is the first name depth-first.
  const linked = externalFile(m(), 5000, new Uint8Array(32).fill(0xab));
  b.set("file", linked);
  c.set("link", linked);
  root.set("long-symlink", symlink(m(), "t/".repeat(2045)));
  const d2048 = new Directory(m({ mode: 0o755 }));
  for (let i = 0; i < 43; i++) d2048.set(`entry-${String(i).padStart(29, "0")}`, inlineFile(m(), "x"));
  const d2049 = new Directory(m({ mode: 0o755 }));
  for (let i = 0; i < 42; i++) d2049.set(`entry-${String(i).padStart(29, "0")}`, inlineFile(m(), "x"));
  d2049.set(`entry-${"9".repeat(30)}`, inlineFile(m(), "x"));
  root.set("d2048", d2048).set("d2049", d2049);
  const many = new Directory(m({ mode: 0o755 }));
  for (let i = 0; i < 700; i++) many.set(`f${i}`, inlineFile(m(), String(i)));
  root.set("many", many);
  for (const size of [2048, 2049, 4096, 4097, 10000]) {
    root.set(`inline-${size}`, inlineFile(m(), noise(size, size)));
  }
  const heavy = () => {
    const x = new Xattrs();
    for (let i = 0; i < 130; i++) x.set(`user.k${String(i).padStart(3, "0")}`, "v");
    return x;
  };
  root.set("xattrs-1", inlineFile(m({ xattrs: heavy() }), "1")).set(
    "xattrs-2",
    inlineFile(m({ xattrs: heavy() }), "2"),
  );
  root.set(
    "acl",
    inlineFile(m({ xattrs: new Xattrs().set("system.posix_acl_access", Uint8Array.of(2, 0, 0, 0)) }), ""),
  );
  root.set("big-uid", inlineFile(m({ uid: 70000, gid: 70001 }), "u"));
  root.set("old", inlineFile(m({ mtime: { sec: -1, nsec: 999_999_999 } }), "o"));
  root.set("dev", device(m(), "blockdev", 0x0801));
  return root;
}

Deno.test({
  name: "erofs writer: a tree beyond the vectors reads back with erofs-utils as written",
  ignore: !haveTools("erofs-utils check", ...EROFS_UTILS),
  async fn() {
    const tree = edgeTree();
    const image = writeErofs(tree);
    await checkWithErofsUtils(image, tree, inodeCount(tree));
    assert.equal(new DataView(image.buffer).getUint32(8, true), 1, "header flags: has ACL");

    // A hardlink numbered before its first name (depth-first) shares that name's inode.
    const file = await inodeInfo(image, "/a/b/file");
    const link = await inodeInfo(image, "/c/link");
    assert.equal(link.NID, file.NID);
    assert.equal(file.Links, "2");
    // Layouts: 0 flat plain (data blocks only), 2 flat inline (tail after the inode), 4 chunk-based.
    assert.equal(file.Layout, "4");
    assert.equal((await inodeInfo(image, "/long-symlink")).Layout, "0", "target in a data block");
    assert.equal((await inodeInfo(image, "/d2048")).Layout, "2", "2048 bytes of entries stay inline");
    assert.equal((await inodeInfo(image, "/d2049")).Layout, "0", "2049 bytes of entries go to a block");
    const inline = [[2048, "2"], [2049, "0"], [4096, "0"], [4097, "2"], [10000, "2"]];
    for (const [size, layout] of inline) {
      assert.equal((await inodeInfo(image, `/inline-${size}`)).Layout, layout, `${size}`);
    }
    assert.equal((await inodeInfo(image, "/big-uid"))["Inode size"], "64", "uid > 65535: extended inode");
    assert.equal((await inodeInfo(image, "/old"))["Inode size"], "32", "the oldest mtime is the build time");
    assert.equal((await inodeInfo(image, "/a"))["Inode size"], "64", "a newer mtime: extended inode");
  },
});

Deno.test("erofs writer: trees it cannot write are a FormatError naming the path", async () => {
  const shared = new Directory();
  const root = new Directory().set("x", new Directory().set("d", shared)).set("y", shared);
  assert.throws(() => writeErofs(root), (e) => e instanceof FormatError && /"\/y".*appears twice/.test(e.message));

  const wh = device(meta(), "chardev", 0);
  assert.throws(
    () => writeErofs(new Directory().set("w1", wh).set("w2", wh)),
    (e) => e instanceof FormatError && /whiteout "\/w1" is hardlinked/.test(e.message),
  );
  assert.throws(
    () => writeErofs(new Directory().set("sub", new Directory().set("f", inlineFile(meta({ uid: 2 ** 32 }), "")))),
    (e) => e instanceof FormatError && e.message === `"/sub/f": uid 4294967296 is out of range`,
  );
  const huge = externalFile(meta(), 2 ** 43 + 1, new Uint8Array(32));
  assert.throws(
    () => writeErofs(new Directory().set("huge", huge)),
    (e) => e instanceof FormatError && /"\/huge": external files larger than 8 TiB/.test(e.message),
  );
  const big = new Directory().set("big", externalFile(meta(), 2 ** 43, new Uint8Array(32))); // 8 TiB is one chunk
  if (haveTools("erofs-utils check", ...EROFS_UTILS)) await checkWithErofsUtils(writeErofs(big), big, inodeCount(big));
  const x = new Xattrs();
  for (let i = 0; i < 5; i++) x.set(`user.${i}`, new Uint8Array(60_000));
  assert.throws(
    () => writeErofs(new Directory().set("fat", inlineFile(meta({ xattrs: x }), ""))),
    (e) => e instanceof FormatError && /"\/fat": its xattrs take \d+ bytes, more than an inode holds/.test(e.message),
  );
});
