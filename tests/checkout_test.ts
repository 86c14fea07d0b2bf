import assert from "node:assert/strict";
import { rootlessOwner } from "../src/ops/checkout_metadata.ts";
import { sha256 } from "../src/util/digest.ts";
import { deltaship, tempDir } from "./helpers/cli.ts";
import { haveRoot, haveTools } from "./helpers/interop.ts";
import { writeImage } from "./helpers/oci.ts";
import { buildTar, type TarSpec } from "./helpers/tar.ts";
import { describeTree, listXattrs } from "./helpers/tree.ts";
import { isRoot, referenceOptions, umociUnpack } from "./helpers/unpack.ts";
import { objectHex, objectPathOf } from "./helpers/objects.ts";

const T = 1_600_000_000;

/** A varied image: modes, owners, times, links of both kinds, xattrs, whiteouts, an opaque dir, a fifo. */
function variedLayers(): TarSpec[][] {
  return [
    [
      { path: "bin/", type: "dir", mtime: T },
      { path: "bin/tool", content: "#!/bin/sh\necho tool\n", mode: 0o755, mtime: T + 1 },
      { path: "bin/suid", content: "suid", mode: 0o4755, mtime: T + 2 },
      { path: "bin/tool-link", type: "symlink", linkname: "tool", mtime: T + 3 },
      { path: "bin/tool-hard", type: "hardlink", linkname: "bin/tool" },
      { path: "etc/", type: "dir", mode: 0o750, uid: 1234, gid: 4321, mtime: T + 4 },
      { path: "etc/owned", content: "owned", uid: 1000, gid: 1001, mtime: T + 5 },
      {
        path: "etc/attrs",
        content: "xattrs",
        mtime: T + 6,
        pax: { "SCHILY.xattr.user.note": "hello", mtime: `${T + 6}.25` },
      },
      { path: "etc/gone", content: "gone", mtime: T + 7 },
      { path: "opq/", type: "dir", mtime: T + 8 },
      { path: "opq/lower", content: "lower", mtime: T + 9 },
      { path: "data/", type: "dir", mtime: T + 10 },
      { path: "data/" + "long-".repeat(30) + "name", content: "long", mtime: T + 11 },
      { path: "data/empty", content: "", mtime: T + 12 },
      { path: "data/fifo", type: "fifo", mode: 0o640, mtime: T + 13 },
      { path: "data/shared", content: "shared content", mtime: T + 14 },
    ],
    [
      { path: "etc/.wh.gone", content: "" },
      { path: "opq/", type: "dir", mtime: T + 20 },
      { path: "opq/.wh..wh..opq", content: "" },
      { path: "opq/upper", content: "upper", mtime: T + 21 },
      { path: "data/cross-layer-hard", type: "hardlink", linkname: "data/shared" },
      { path: "bin/tool", content: "replaced", mode: 0o700, mtime: T + 22 },
    ],
  ];
}

async function image(dir: string, layers: TarSpec[][], tag = "t"): Promise<void> {
  await writeImage(dir, { tag, layers: layers.map((l) => ({ tar: buildTar(l) })) });
}

Deno.test("checkout writes the merged tree: whiteouts, links, modes, times", async () => {
  await using tmp = await tempDir();
  await image(`${tmp.path}/l`, variedLayers());
  const repo = `${tmp.path}/repo`;
  assert.equal((await deltaship(repo, "pull", `oci:${tmp.path}/l:t`, "app")).code, 0);
  const r = await deltaship(repo, "--json", "checkout", "app", `${tmp.path}/co`);
  assert.equal(r.code, 0, r.stderr);
  const tree = await describeTree(`${tmp.path}/co`, { mtime: true, links: true, owner: true, xattrs: true });
  assert.deepEqual(Object.keys(tree), [
    "bin",
    "bin/suid",
    "bin/tool",
    "bin/tool-hard",
    "bin/tool-link",
    "data",
    "data/cross-layer-hard",
    "data/empty",
    "data/fifo",
    "data/" + "long-".repeat(30) + "name",
    "data/shared",
    "etc",
    "etc/attrs",
    "etc/owned",
    "opq",
    "opq/upper",
  ]);
  // bin/tool was replaced in layer 2: the old hardlink keeps the old inode, alone now.
  assert.equal(tree["bin/tool"].value, sha256("replaced"));
  assert.equal(tree["bin/tool"].mode, 0o700);
  assert.equal(tree["bin/tool-hard"].value, sha256("#!/bin/sh\necho tool\n"));
  assert.equal(tree["bin/tool-hard"].mode, 0o755);
  assert.equal(tree["bin/tool-hard"].linkGroup, undefined);
  assert.equal(tree["bin/suid"].mode, 0o4755);
  assert.deepEqual({ ...tree["bin/tool-link"], mtime: undefined, owner: undefined }, {
    type: "symlink",
    mode: 0,
    value: "tool",
    mtime: undefined,
    owner: undefined,
  });
  assert.equal(tree["bin/tool-link"].mtime, (T + 3) * 1000);
  // A hardlink to a lower layer's file is the same inode.
  assert.equal(tree["data/cross-layer-hard"].linkGroup, "data/cross-layer-hard");
  assert.equal(tree["data/shared"].linkGroup, "data/cross-layer-hard");
  assert.equal(tree["data/empty"].value, sha256(""));
  assert.equal(tree["etc"].mode, 0o750);
  assert.equal(tree["etc"].mtime, (T + 4) * 1000);
  assert.equal(tree["opq"].mtime, (T + 20) * 1000);
  assert.equal(tree["etc/attrs"].mtime, (T + 6) * 1000 + 250);
  assert.equal(tree["data/fifo"].type, "fifo");
  assert.equal(tree["data/fifo"].mode, 0o640);
  const out = JSON.parse(r.stdout);
  assert.equal(out.files, 9);
  assert.equal(out.hardlinks, 1);
  assert.equal(out.symlinks, 1);
  if (isRoot()) {
    assert.equal(tree["etc"].owner, "1234:4321");
    assert.equal(tree["etc/owned"].owner, "1000:1001");
    assert.deepEqual(tree["etc/attrs"].xattrs, { "user.note": "hello" });
    assert.deepEqual(out.notApplied, { ownership: 0, devices: 0, xattrs: 0, other: 0 });
    assert.equal(r.stderr, "");
  } else {
    // Ownership cannot be applied: said on stderr, with a count.
    assert.ok(out.notApplied.ownership > 0);
    assert.match(r.stderr, /note: \d+ owners not set \(needs root\)/);
  }
});

Deno.test("checkout refuses a non-empty directory without --force, and a file as DIR", async () => {
  await using tmp = await tempDir();
  await image(`${tmp.path}/l`, [[{ path: "f", content: "x" }]]);
  const repo = `${tmp.path}/repo`;
  assert.equal((await deltaship(repo, "pull", `oci:${tmp.path}/l:t`, "app")).code, 0);
  await Deno.mkdir(`${tmp.path}/co`);
  await Deno.writeTextFile(`${tmp.path}/co/precious`, "keep");
  const r = await deltaship(repo, "checkout", "app", `${tmp.path}/co`);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /is not empty; .* pass --force/);
  assert.deepEqual([...Deno.readDirSync(`${tmp.path}/co`)].map((e) => e.name), ["precious"]);
  const f = await deltaship(repo, "checkout", "app", `${tmp.path}/co/precious`);
  assert.equal(f.code, 2);
  assert.match(f.stderr, /exists and is not a directory/);
  const forced = await deltaship(repo, "checkout", "--force", "app", `${tmp.path}/co`);
  assert.equal(forced.code, 0, forced.stderr);
  assert.equal(Deno.readTextFileSync(`${tmp.path}/co/precious`), "keep");
  assert.equal(Deno.readTextFileSync(`${tmp.path}/co/f`), "x");
});

Deno.test("checkout --force replaces a symlink in the way instead of writing through it", async () => {
  await using tmp = await tempDir();
  await Deno.mkdir(`${tmp.path}/outside`);
  await Deno.writeTextFile(`${tmp.path}/outside/hostname`, "outside");
  await image(`${tmp.path}/l`, [[
    { path: "etc/", type: "dir" },
    { path: "etc/hostname", content: "image" },
    { path: "motd", content: "image motd" },
  ]]);
  const repo = `${tmp.path}/repo`;
  assert.equal((await deltaship(repo, "pull", `oci:${tmp.path}/l:t`, "app")).code, 0);
  await Deno.mkdir(`${tmp.path}/co`);
  await Deno.symlink(`${tmp.path}/outside`, `${tmp.path}/co/etc`);
  await Deno.symlink(`${tmp.path}/outside/hostname`, `${tmp.path}/co/motd`);
  const r = await deltaship(repo, "checkout", "--force", "app", `${tmp.path}/co`);
  assert.equal(r.code, 0, r.stderr);
  assert.ok(Deno.lstatSync(`${tmp.path}/co/etc`).isDirectory);
  assert.equal(Deno.readTextFileSync(`${tmp.path}/co/etc/hostname`), "image");
  assert.ok(Deno.lstatSync(`${tmp.path}/co/motd`).isFile);
  assert.deepEqual([...Deno.readDirSync(`${tmp.path}/outside`)].map((e) => e.name), ["hostname"]);
  assert.equal(Deno.readTextFileSync(`${tmp.path}/outside/hostname`), "outside");
});

Deno.test("checkout --hardlink links files to repository objects, which stay intact", async () => {
  await using tmp = await tempDir();
  await image(`${tmp.path}/l`, [[
    { path: "a", content: "content a", mode: 0o755 },
    { path: "b", content: "content a" },
    { path: "c", type: "hardlink", linkname: "a" },
    { path: "empty", content: "", mode: 0o600 },
  ]]);
  const repo = `${tmp.path}/repo`;
  assert.equal((await deltaship(repo, "pull", `oci:${tmp.path}/l:t`, "app")).code, 0);
  const r = await deltaship(repo, "checkout", "--hardlink", "app", `${tmp.path}/co`);
  assert.equal(r.code, 0, r.stderr);
  const object = Deno.statSync(objectPathOf(repo, "content a"));
  for (const name of ["a", "b", "c"]) {
    assert.equal(Deno.statSync(`${tmp.path}/co/${name}`).ino, object.ino, name);
  }
  assert.equal(Deno.statSync(`${tmp.path}/co/empty`).mode! & 0o777, 0o600);
  assert.equal((await deltaship(repo, "fsck")).code, 0);
});

Deno.test("a failed checkout removes the directory it made", async () => {
  await using tmp = await tempDir();
  await image(`${tmp.path}/l`, [[{ path: "dir/", type: "dir" }, { path: "dir/f", content: "will vanish" }]]);
  const repo = `${tmp.path}/repo`;
  assert.equal((await deltaship(repo, "pull", `oci:${tmp.path}/l:t`, "app")).code, 0);
  await Deno.remove(objectPathOf(repo, "will vanish"));
  const r = await deltaship(repo, "checkout", "app", `${tmp.path}/co`);
  assert.equal(r.code, 1);
  assert.equal(r.stderr, `deltaship: object ${objectHex("will vanish")} is missing from the repository; run fsck\n`);
  assert.equal(await Deno.lstat(`${tmp.path}/co`).catch(() => null), null);
  await Deno.mkdir(`${tmp.path}/empty`);
  assert.equal((await deltaship(repo, "checkout", "app", `${tmp.path}/empty`)).code, 1);
  assert.deepEqual([...Deno.readDirSync(`${tmp.path}/empty`)], []);
});

/** Layers that try every way out of the checkout directory; `outside` is a real directory beside it. */
function hostileLayers(outside: string): TarSpec[][] {
  return [
    [
      { path: "etc/", type: "dir" },
      { path: "etc/passwd", content: "root:x:0:0\n" },
      { path: "abs", type: "symlink", linkname: outside }, // absolute, to a real place outside
      { path: "up", type: "symlink", linkname: "../../../../../../.." },
      { path: "root", type: "symlink", linkname: "/" },
      { path: "lnk", type: "symlink", linkname: "/etc" },
      { path: "replace-me", type: "symlink", linkname: `${outside}/canary` },
      { path: "same/", type: "dir" },
      { path: "same/s", type: "symlink", linkname: "/" },
      { path: "same/s/etc/same-layer", content: "same layer, through a symlink" },
    ],
    [
      { path: "abs/pwned", content: "through an absolute symlink" },
      { path: "up/pwned", content: "through ../.." },
      { path: "root/etc/through-root", content: "through /" },
      { path: "hard", type: "hardlink", linkname: "lnk/passwd" }, // a hardlink through a symlink
      { path: "replace-me", content: "a file where the symlink was" },
      { path: "abs/.wh.canary", content: "" }, // a whiteout through a symlink
      { path: "abs/sub/", type: "dir" },
    ],
  ];
}

Deno.test("hostile layers: nothing is written outside the checkout directory", async () => {
  await using tmp = await tempDir();
  const outside = `${tmp.path}/outside`;
  await Deno.mkdir(outside);
  await Deno.writeTextFile(`${outside}/canary`, "canary");
  await image(`${tmp.path}/l`, hostileLayers(outside));
  const repo = `${tmp.path}/repo`;
  assert.equal((await deltaship(repo, "pull", `oci:${tmp.path}/l:t`, "app")).code, 0);
  const r = await deltaship(repo, "checkout", "app", `${tmp.path}/co`);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(await describeTree(outside), { canary: { type: "file", mode: 0o644, value: sha256("canary") } });
  assert.deepEqual([...Deno.readDirSync(tmp.path)].map((e) => e.name).sort(), ["co", "l", "outside", "repo"]);
  const co = `${tmp.path}/co`;
  // Everything landed inside, where the symlinks lead when the checkout is the root.
  assert.equal(Deno.readTextFileSync(`${co}${outside}/pwned`), "through an absolute symlink");
  assert.equal(Deno.readTextFileSync(`${co}/pwned`), "through ../..");
  assert.equal(Deno.readTextFileSync(`${co}/etc/through-root`), "through /");
  assert.equal(Deno.readTextFileSync(`${co}/etc/same-layer`), "same layer, through a symlink");
  assert.equal(Deno.statSync(`${co}/hard`).ino, Deno.statSync(`${co}/etc/passwd`).ino);
  assert.ok(Deno.lstatSync(`${co}/replace-me`).isFile);
  assert.ok(Deno.lstatSync(`${co}${outside}/sub`).isDirectory);
  // The symlinks themselves are kept as they were written.
  assert.equal(Deno.readLinkSync(`${co}/abs`), outside);
  assert.equal(Deno.readLinkSync(`${co}/up`), "../../../../../../..");
});

Deno.test("hostile layers: a hardlink to outside or a symlink loop fails cleanly", async () => {
  await using tmp = await tempDir();
  const outside = `${tmp.path}/outside`;
  await Deno.mkdir(outside);
  await Deno.writeTextFile(`${outside}/canary`, "canary");
  const repo = `${tmp.path}/repo`;
  await image(`${tmp.path}/l`, [
    [{ path: "out", type: "symlink", linkname: outside }],
    [{ path: "h", type: "hardlink", linkname: "out/canary" }],
  ], "hard");
  await image(`${tmp.path}/l`, [
    [{ path: "a", type: "symlink", linkname: "b" }, { path: "b", type: "symlink", linkname: "a" }],
    [{ path: "a/x", content: "loop" }],
  ], "loop");
  for (const tag of ["hard", "loop"]) {
    assert.equal((await deltaship(repo, "pull", `oci:${tmp.path}/l:${tag}`)).code, 0);
  }
  const hard = await deltaship(repo, "checkout", "hard", `${tmp.path}/co`);
  assert.equal(hard.code, 1);
  assert.match(hard.stderr, /hardlink "h" points to "out\/canary", which is not there/);
  const loop = await deltaship(repo, "checkout", "loop", `${tmp.path}/co`);
  assert.equal(loop.code, 1);
  assert.match(loop.stderr, /too many levels of symbolic links resolving "a\/x"/);
  assert.equal(await Deno.lstat(`${tmp.path}/co`).catch(() => null), null);
  assert.equal(Deno.statSync(`${outside}/canary`).nlink, 1);
  assert.deepEqual([...Deno.readDirSync(outside)].map((e) => e.name), ["canary"]);
});

Deno.test({
  name: "interop: checkout gives the tree umoci raw unpack gives (varied and hostile images)",
  ignore: !haveTools("checkout interop", "umoci"),
  async fn() {
    await using tmp = await tempDir();
    const outside = `${tmp.path}/outside`;
    await Deno.mkdir(outside);
    await Deno.writeTextFile(`${outside}/canary`, "canary");
    await image(`${tmp.path}/l`, variedLayers(), "varied");
    await image(`${tmp.path}/l`, hostileLayers(outside), "hostile");
    const repo = `${tmp.path}/repo`;
    for (const tag of ["varied", "hostile"]) {
      assert.equal((await deltaship(repo, "pull", `oci:${tmp.path}/l:${tag}`)).code, 0);
      const r = await deltaship(repo, "checkout", tag, `${tmp.path}/ours-${tag}`);
      assert.equal(r.code, 0, r.stderr);
      await umociUnpack(`${tmp.path}/l`, tag, `${tmp.path}/umoci-${tag}`);
      const theirs = await describeTree(`${tmp.path}/umoci-${tag}`, referenceOptions());
      const ours = await describeTree(`${tmp.path}/ours-${tag}`, referenceOptions());
      assert.deepEqual(ours, theirs, tag);
    }
    // Directory mtimes too, where umoci had an entry to take them from.
    const full = { ...referenceOptions(), mtime: true };
    assert.deepEqual(
      await describeTree(`${tmp.path}/ours-varied`, full),
      await describeTree(`${tmp.path}/umoci-varied`, full),
    );
    assert.deepEqual([...Deno.readDirSync(outside)].map((e) => e.name), ["canary"]);
  },
});

Deno.test({
  name: "checkout as root: owners, device nodes and security xattrs",
  ignore: !haveRoot("checkout as root: owners, device nodes and security xattrs"),
  async fn() {
    await using tmp = await tempDir();
    const cap = "\x01\x00\x00\x02\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00";
    await image(`${tmp.path}/l`, [[
      { path: "dev/", type: "dir" },
      { path: "dev/null", type: "chardev", mode: 0o666 },
      {
        path: "ping",
        content: "binary",
        mode: 0o755,
        uid: 7,
        gid: 8,
        pax: { "SCHILY.xattr.security.capability": cap },
      },
    ]]);
    const repo = `${tmp.path}/repo`;
    assert.equal((await deltaship(repo, "pull", `oci:${tmp.path}/l:t`)).code, 0);
    const r = await deltaship(repo, "--json", "checkout", "t", `${tmp.path}/co`);
    assert.equal(r.code, 0, r.stderr);
    const st = Deno.lstatSync(`${tmp.path}/co/dev/null`);
    assert.ok(st.isCharDevice);
    assert.equal(st.mode! & 0o7777, 0o666);
    const ping = Deno.lstatSync(`${tmp.path}/co/ping`);
    assert.equal(`${ping.uid}:${ping.gid}`, "7:8");
    // The capability survives the chown (set after it).
    assert.equal(listXattrs(`${tmp.path}/co/ping`)["security.capability"]?.length, cap.length);
    assert.equal(JSON.parse(r.stdout).devices, 1);
  },
});

Deno.test("the rootless owner record is the protobuf umoci writes", () => {
  assert.deepEqual([...rootlessOwner(1000, 1001)], [0x08, 0xe8, 0x07, 0x10, 0xe9, 0x07]);
  assert.deepEqual([...rootlessOwner(1234, 4321)], [0x08, 0xd2, 0x09, 0x10, 0xe1, 0x21]);
  assert.deepEqual([...rootlessOwner(0, 5)], [0x10, 0x05]);
  assert.deepEqual([...rootlessOwner(0, 0)], []);
});
