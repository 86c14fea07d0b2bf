/**
 * Hardlinks to symlinks, fifos and devices, and names that are not UTF-8, in
 * `checkout` and `export` as in the composefs image (issue 22): a hardlink is
 * another name of whatever its target is (a symlink stays a symlink, also when
 * its own name is gone), names and symlink targets are their bytes; compared
 * byte for byte with what `umoci raw unpack` makes of the image, and of the
 * image `deltaship export` writes.
 */
import assert from "node:assert/strict";
import { deltaship, tempDir } from "./helpers/cli.ts";
import { haveTools } from "./helpers/interop.ts";
import { writeImage } from "./helpers/oci.ts";
import { type RawEntry, rawTar } from "./helpers/rules_probes.ts";
import { isRoot, umociUnpack } from "./helpers/unpack.ts";

const enc = new TextEncoder();
const latin1 = new TextDecoder("latin1");
const bytes = (...parts: (string | number)[]) =>
  Uint8Array.from(parts.flatMap((p) => (typeof p === "string" ? [...enc.encode(p)] : [p])));

/** The layers: links of every kind, names and a symlink target that are not UTF-8, a symlink left only as a hardlink. */
function layers(): RawEntry[][] {
  return [
    [
      { name: "usr/", typeflag: "5", mode: 0o755, mtime: 2000 },
      { name: "usr/target", typeflag: "0", mode: 0o644, mtime: 1000, content: "target" },
      { name: "usr/sym", typeflag: "2", mode: 0o777, mtime: 1001, linkname: "target" },
      { name: "usr/pipe", typeflag: "6", mode: 0o640, mtime: 1002 },
      { name: bytes("usr/caf", 0xe9), typeflag: "0", mode: 0o600, mtime: 1003, content: "latin1" },
      { name: bytes("usr/", 0xff, "/"), typeflag: "5", mode: 0o750, mtime: 1004 },
      { name: bytes("usr/", 0xff, "/f"), typeflag: "0", mode: 0o644, mtime: 1005, content: "in a byte dir" },
      { name: "usr/badlink", typeflag: "2", mode: 0o777, mtime: 1006, linkname: bytes("caf", 0xe9) },
      { name: "hl-sym", typeflag: "1", linkname: "usr/sym" },
      { name: "hl-pipe", typeflag: "1", linkname: "usr/pipe" },
      { name: bytes("hl-", 0xe9), typeflag: "1", linkname: bytes("usr/caf", 0xe9) },
      { name: "hl-badlink", typeflag: "1", linkname: "usr/badlink" },
      ...(isRoot()
        ? [
          { name: "usr/null", typeflag: "3", mode: 0o666, mtime: 1007, devmajor: 1, devminor: 3 },
          { name: "hl-null", typeflag: "1", linkname: "usr/null" },
        ]
        : []),
    ],
    [{ name: "usr/.wh.sym", typeflag: "0", mode: 0o644, mtime: 1000 }],
  ];
}

/**
 * Every path under `dir` as its bytes (latin1, so any byte shows), with its type,
 * permissions, size, symlink target and the first path of its inode's names.
 */
async function listing(dir: string): Promise<string[]> {
  const out = await new Deno.Command("find", {
    args: [dir, "-mindepth", "1", "-printf", "%P\\0%y\\0%m\\0%s\\0%l\\0%i\\0%T@\\0"],
    stdout: "piped",
  }).output();
  assert.ok(out.success);
  const fields = latin1.decode(out.stdout).split("\0");
  const rows: { path: string; rest: string; inode: string }[] = [];
  for (let i = 0; i + 7 <= fields.length; i += 7) {
    const [path, type, mode, size, link, inode, mtime] = fields.slice(i, i + 7);
    rows.push({ path, inode, rest: `${type} ${mode} ${type === "d" ? "-" : size} ${link} ${mtime.split(".")[0]}` });
  }
  rows.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  const first = new Map<string, string>();
  for (const r of rows) if (!first.has(r.inode)) first.set(r.inode, r.path);
  return rows.map((r) => `${JSON.stringify(r.path)} ${r.rest} links:${JSON.stringify(first.get(r.inode))}`);
}

Deno.test({
  name: "checkout and export: hardlinks to symlinks, fifos and devices, and names as bytes, as umoci unpacks them",
  ignore: !haveTools("checkout links interop", "umoci", "find"),
  async fn() {
    await using tmp = await tempDir();
    const repo = `${tmp.path}/repo`;
    await writeImage(`${tmp.path}/l`, { tag: "t", layers: layers().map((l) => ({ tar: rawTar(l) })) });
    assert.equal((await deltaship(repo, "pull", `oci:${tmp.path}/l:t`, "app")).code, 0);
    const co = await deltaship(repo, "checkout", "app", `${tmp.path}/ours`);
    assert.equal(co.code, 0, co.stderr);
    await umociUnpack(`${tmp.path}/l`, "t", `${tmp.path}/umoci`);
    const theirs = await listing(`${tmp.path}/umoci`);
    const ours = await listing(`${tmp.path}/ours`);
    assert.deepEqual(ours, theirs);
    // What the composefs image has too: the symlink lives on as hl-sym, the fifo and caf\xe9 have two names;
    // usr and usr/\xff keep their mtimes though a name in them was renamed to its bytes last.
    assert.ok(ours.some((l) => l.startsWith(`"usr" d 755 -  2000`)), ours.join("\n"));
    assert.ok(ours.some((l) => l.startsWith(`"hl-sym" l 777 6 target 1001 links:"hl-sym"`)), ours.join("\n"));
    assert.ok(ours.some((l) => l.startsWith(`"usr/pipe" p 640 0  1002 links:"hl-pipe"`)), ours.join("\n"));
    assert.ok(ours.some((l) => l.startsWith(`"usr/caf\u00e9" f 600 6  1003 links:"hl-\u00e9"`)), ours.join("\n"));
    assert.ok(
      ours.some((l) => l.startsWith(`"usr/badlink" l 777 4 caf\u00e9 1006 links:"hl-badlink"`)),
      ours.join("\n"),
    );
    assert.ok(ours.some((l) => l.startsWith(`"usr/\u00ff/f" f 644 13  1005`)), ours.join("\n"));

    const exported = await deltaship(repo, "export", "app", `oci:${tmp.path}/exported:t`);
    assert.equal(exported.code, 0, exported.stderr);
    await umociUnpack(`${tmp.path}/exported`, "t", `${tmp.path}/umoci-exported`);
    assert.deepEqual(await listing(`${tmp.path}/umoci-exported`), theirs);
  },
});
