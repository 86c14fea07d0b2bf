/**
 * A composefs image the writer made, mounted by the kernel as composefs mounts it
 * (EROFS on a loop device, then overlayfs with the image as metadata layer and an
 * object store named by our fs-verity digests as data-only layer), shows the tree
 * it was made from: names, types, modes, owners, mtimes, contents, link targets,
 * hardlinks and user xattrs. Needs root and a kernel with erofs and overlay (6.5+
 * for data-only layers); skipped visibly otherwise, naming why, and failing
 * under REQUIRE_INTEROP=1.
 */
import assert from "node:assert/strict";
import { writeErofs } from "../src/composefs/erofs_writer.ts";
import {
  device,
  Directory,
  fifo,
  inlineFile,
  type Inode,
  type Meta,
  meta,
  type RegularFile,
  regularFile,
  symlink,
  walk,
  Xattrs,
} from "../src/composefs/tree.ts";
import { sha256 } from "../src/util/digest.ts";
import { checkWithErofsUtils, describeInode, inodeCount } from "./helpers/composefs.ts";
import { noise } from "./helpers/data.ts";
import { canMount, haveTools, whyNoMounts } from "./helpers/interop.ts";
import { describeTree, type TreeNode } from "./helpers/tree.ts";

const ready = canMount("composefs mount") && haveTools("composefs mount", "mount", "umount");

/** A tree with one of everything, its external files' contents in `objects` (by store path). */
function mountTree(objects: Map<string, Uint8Array>): Directory {
  const m = (o: Partial<Meta> = {}) => meta({ mtime: { sec: 1_700_000_000, nsec: 123_456_789 }, ...o });
  const ext = (mm: Meta, content: Uint8Array) => {
    const f = regularFile(mm, content);
    if (f.payload) objects.set(new TextDecoder().decode(f.payload), content);
    return f;
  };
  const root = new Directory(m({ mode: 0o755 }));
  const bin = new Directory(m({ mode: 0o755, xattrs: new Xattrs().set("user.dir", "yes") }));
  const etc = new Directory(m({ mode: 0o750, uid: 10, gid: 20, mtime: { sec: 1_600_000_000, nsec: 1 } }));
  const deep = new Directory(m({ mode: 0o755 }));
  root.set("bin", bin).set("etc", etc).set("deep", deep);
  const busybox = ext(m({ mode: 0o4755, xattrs: new Xattrs().set("user.tool", "busybox") }), noise(300_000, 1));
  bin.set("busybox", busybox).set("sh", busybox);
  bin.set("ls", symlink(m(), "busybox"));
  bin.set("copy", ext(m({ mode: 0o755 }), noise(300_000, 1)));
  etc.set("hostname", inlineFile(m({ uid: 1000, gid: 1000 }), "composefs\n"));
  etc.set("empty", inlineFile(m(), ""));
  etc.set("edge-4097", ext(m({ mode: 0o600 }), noise(4097, 2)));
  etc.set("edge-65", ext(m(), noise(65, 3)));
  etc.set("inline-64", ext(m(), noise(64, 4)));
  assert.equal((etc.get("inline-64") as RegularFile).content?.length, 64, "64 bytes stay inline");
  assert.equal((etc.get("edge-65") as RegularFile).content, null, "65 bytes go to the store");
  etc.set("long-link", symlink(m(), "x/".repeat(2045)));
  const heavy = () => {
    const x = new Xattrs();
    for (let i = 0; i < 130; i++) x.set(`user.k${String(i).padStart(3, "0")}`, `value ${i}`);
    return x;
  };
  etc.set("xattrs-1", inlineFile(m({ xattrs: heavy() }), "1")).set("xattrs-2", inlineFile(m({ xattrs: heavy() }), "2"));
  etc.set("escaped", inlineFile(m({ xattrs: new Xattrs().set("trusted.overlay.redirect", "/nowhere") }), "e"));
  const dev = new Directory(m({ mode: 0o755 }));
  root.set("dev", dev);
  dev.set("null", device(m({ mode: 0o666 }), "chardev", 0x0103)).set("sda1", device(m(), "blockdev", 0x0801));
  dev.set("fifo", fifo(m()));
  const layer = new Directory(m({ mode: 0o755 }));
  deep.set("layer", layer);
  layer.set("removed", device(m(), "chardev", 0));
  layer.set("kept", ext(m(), noise(5000, 5)));
  return root;
}

/** What `describeTree` with owner, mtime, links and xattrs sees of `root` mounted (user xattrs only). */
function expected(root: Directory, objects: Map<string, Uint8Array>): Record<string, TreeNode> {
  const out: Record<string, TreeNode> = {};
  const paths = new Map<Inode, string[]>();
  for (const { path, inode } of walk(root)) {
    if (inode === root) continue;
    const p = new TextDecoder().decode(path).slice(1);
    const node = describeInode(inode, {
      modeMask: 0o7777,
      external: (i) =>
        sha256(objects.get(new TextDecoder().decode(i.type === "file" ? i.payload! : new Uint8Array()))!),
    });
    const x: Record<string, string> = {};
    for (const a of inode.meta.xattrs) {
      const name = new TextDecoder().decode(a.name);
      if (name.startsWith("user.")) x[name] = new TextDecoder().decode(a.value);
    }
    if (inode.type === "chardev" && inode.rdev === 0) {
      // An escaped whiteout: an empty file that marks itself and its directory for an overlay above.
      x["user.overlay.whiteout"] = "";
      const parent = p.slice(0, p.lastIndexOf("/"));
      out[parent].xattrs = { ...out[parent].xattrs, "user.overlay.whiteouts": "", "user.overlay.opaque": "x" };
    }
    if (Object.keys(x).length) node.xattrs = x;
    out[p] = node;
    if (inode.type !== "directory") paths.set(inode, [...(paths.get(inode) ?? []), p]);
  }
  for (const group of paths.values()) {
    if (group.length < 2) continue;
    const first = [...group].sort()[0];
    for (const p of group) out[p].linkGroup = first;
  }
  return Object.fromEntries(Object.entries(out).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

async function sh(cmd: string, ...args: string[]): Promise<void> {
  const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  if (!out.success) throw new Error(`${cmd} ${args.join(" ")}: ${new TextDecoder().decode(out.stderr).trim()}`);
}

Deno.test({
  name: "composefs mount: the kernel shows the image's tree, file contents read from the object store",
  ignore: !ready,
  async fn() {
    const objects = new Map<string, Uint8Array>();
    const tree = mountTree(objects);
    const dir = await Deno.makeTempDir({ prefix: "composefs-mount-" });
    const mounted: string[] = [];
    try {
      const image = writeErofs(tree);
      if (haveTools("erofs-utils check", "fsck.erofs", "dump.erofs")) {
        await checkWithErofsUtils(image, tree, inodeCount(tree));
      }
      await Deno.writeFile(`${dir}/image.erofs`, image);
      for (const [path, content] of objects) {
        await Deno.mkdir(`${dir}/objects/${path.slice(0, 2)}`, { recursive: true });
        await Deno.writeFile(`${dir}/objects/${path}`, content);
      }
      for (const d of ["meta", "target"]) await Deno.mkdir(`${dir}/${d}`);
      await sh("mount", "-t", "erofs", "-o", "ro,loop", `${dir}/image.erofs`, `${dir}/meta`);
      mounted.unshift(`${dir}/meta`);
      await sh(
        "mount",
        "-t",
        "overlay",
        "overlay",
        "-o",
        `ro,lowerdir=${dir}/meta::${dir}/objects,metacopy=on,redirect_dir=on`,
        `${dir}/target`,
      );
      mounted.unshift(`${dir}/target`);

      const got = await describeTree(`${dir}/target`, { owner: true, mtime: true, links: true, xattrs: true });
      for (const node of Object.values(got)) {
        if (!node.xattrs) continue;
        node.xattrs = Object.fromEntries(Object.entries(node.xattrs).filter(([k]) => k.startsWith("user.")));
        if (Object.keys(node.xattrs).length === 0) delete node.xattrs;
      }
      assert.deepEqual(got, expected(tree, objects));
      const st = await Deno.lstat(`${dir}/target/bin/busybox`);
      assert.equal(st.size, 300_000);
    } finally {
      for (const m of mounted) await sh("umount", m).catch((e) => console.error(e));
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("composefs mount tests need Linux 6.5 or later (data-only overlay layers): older kernels skip, naming why", () => {
  const host = { os: "linux", root: true, release: "6.1.0-18-amd64", filesystems: "nodev\toverlay\n\terofs\n" };
  assert.equal(whyNoMounts(host), "Linux 6.1.0-18-amd64 is older than 6.5 (no overlayfs data-only layers)");
  assert.equal(
    whyNoMounts({ ...host, release: "5.15.0-91-generic" }),
    "Linux 5.15.0-91-generic is older than 6.5 (no overlayfs data-only layers)",
  );
  assert.equal(whyNoMounts({ ...host, release: "6.5.0" }), undefined);
  assert.equal(whyNoMounts({ ...host, release: "6.18.44-fc-v1272" }), undefined);
  assert.equal(whyNoMounts({ ...host, release: "7.0" }), undefined);
  assert.equal(whyNoMounts({ ...host, filesystems: "nodev\toverlay\n" }), "the kernel has no erofs");
  assert.equal(whyNoMounts({ ...host, root: false }), "not root");
});
