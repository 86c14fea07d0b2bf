import assert from "node:assert/strict";
import { loadRootfs } from "../src/repo/layer_reader.ts";
import { Repository } from "../src/repo/repository.ts";
import { storeLayerTar } from "../src/repo/layer_writer.ts";
import { asDiffId, type DiffId, sha256 } from "../src/util/digest.ts";
import { tempDir } from "./helpers/cli.ts";
import { buildTar, type TarSpec } from "./helpers/tar.ts";
import { objectHex } from "./helpers/objects.ts";

async function stack(repo: Repository, layers: TarSpec[][]): Promise<DiffId[]> {
  const ids = [];
  for (const l of layers) {
    const tar = buildTar(l);
    const id = asDiffId(sha256(tar));
    await storeLayerTar(repo, [tar], id, "test layer");
    ids.push(id);
  }
  return ids;
}

Deno.test("rootfs applies whiteouts, opaque directories and replacements across layers", async () => {
  await using tmp = await tempDir();
  const repo = await Repository.open(`${tmp.path}/repo`);
  const ids = await stack(repo, [
    [
      { path: "etc/", type: "dir" },
      { path: "etc/keep", content: "keep" },
      { path: "etc/gone", content: "gone" },
      { path: "etc/replaced", content: "old" },
      { path: "opq/", type: "dir" },
      { path: "opq/lower", content: "lower" },
      { path: "dir-then-file/", type: "dir" },
      { path: "dir-then-file/child", content: "c" },
    ],
    [
      { path: "etc/.wh.gone", content: "" },
      { path: "etc/replaced", content: "new" },
      { path: "opq/upper", content: "upper" },
      { path: "opq/.wh..wh..opq", content: "" },
      { path: "dir-then-file", content: "now a file" },
      { path: "link", type: "hardlink", linkname: "etc/keep" },
    ],
  ]);
  const fs = await loadRootfs(repo, ids);
  const paths = [...fs.walk()].map(([p]) => p).sort();
  assert.deepEqual(paths, ["dir-then-file", "etc", "etc/keep", "etc/replaced", "link", "opq", "opq/upper"]);
  assert.deepEqual(fs.regularFile("etc/replaced"), { object: objectHex("new"), size: 3 });
  assert.deepEqual(fs.regularFile("link"), { object: objectHex("keep"), size: 4 });
  assert.equal(fs.regularFile("etc/gone"), "missing");
  assert.equal(fs.regularFile("opq/lower"), "missing");
  assert.equal(fs.regularFile("etc"), "not a regular file");
  await repo.close();
});

Deno.test("rootfs follows symlinks inside entry paths the way unpackers do, never out of the root", async () => {
  await using tmp = await tempDir();
  const repo = await Repository.open(`${tmp.path}/repo`);
  const ids = await stack(repo, [
    [
      { path: "usr/", type: "dir" },
      { path: "usr/lib/", type: "dir" },
      { path: "usr/lib/libc.so", content: "libc" },
      { path: "lib", type: "symlink", linkname: "usr/lib" },
      { path: "up", type: "symlink", linkname: "../../.." },
      { path: "abs", type: "symlink", linkname: "/usr" },
    ],
    [
      { path: "lib/libnew.so", content: "new" }, // lands in usr/lib, lib stays a symlink
      { path: "up/top", content: "top" }, // ../.. stops at the root
      { path: "abs/share/doc", content: "doc" }, // absolute targets start from the root
      { path: "lib/.wh.libc.so", content: "" }, // whiteouts resolve the same way
      { path: "link-to-new", type: "hardlink", linkname: "lib/libnew.so" },
    ],
  ]);
  const fs = await loadRootfs(repo, ids);
  assert.deepEqual([...fs.walk()].map(([p, n]) => `${p}${n.implicit ? " (implicit)" : ""}`).sort(), [
    "abs",
    "lib",
    "link-to-new",
    "top",
    "up",
    "usr",
    "usr/lib",
    "usr/lib/libnew.so",
    "usr/share (implicit)",
    "usr/share/doc",
  ]);
  assert.equal(fs.get("lib")?.entry.kind, "symlink");
  assert.equal(fs.lookup("lib/libnew.so"), fs.get("usr/lib/libnew.so"));
  assert.equal(fs.lookup("up/up/usr/lib"), fs.get("usr/lib"));
  assert.equal(fs.get("link-to-new")?.inode, fs.get("usr/lib/libnew.so"));
  assert.deepEqual(fs.regularFile("link-to-new"), { object: objectHex("new"), size: 3 });
  await repo.close();
});

Deno.test("rootfs: a hardlink is another name of its target, whatever leaf it is; the target's directories resolve", async () => {
  await using tmp = await tempDir();
  const repo = await Repository.open(`${tmp.path}/repo`);
  const ids = await stack(repo, [
    [
      { path: "usr/", type: "dir" },
      { path: "usr/lib/", type: "dir" },
      { path: "usr/lib/libc.so", content: "libc" },
      { path: "usr/lib/link", type: "symlink", linkname: "libc.so" },
      { path: "usr/lib/pipe", type: "fifo" },
      { path: "lib", type: "symlink", linkname: "usr/lib" },
    ],
    [
      { path: "hl-link", type: "hardlink", linkname: "usr/lib/link" }, // the symlink itself, not libc.so
      { path: "hl-pipe", type: "hardlink", linkname: "lib/pipe" }, // lib/ resolved, as umoci resolves it
      { path: "/abs", type: "hardlink", linkname: "/usr/lib/libc.so" }, // leading slashes dropped
    ],
    [{ path: "usr/lib/.wh.link", content: "" }],
  ]);
  const fs = await loadRootfs(repo, ids);
  const link = fs.get("hl-link")!;
  assert.equal(link.inode?.entry.kind, "symlink", "the inode is the symlink, alive after its own name went");
  assert.equal(link.inode?.entry.linkname, "libc.so");
  assert.equal(fs.regularFile("hl-link"), "not a regular file");
  assert.equal(fs.lookup("hl-link"), undefined, "followed as a symlink: libc.so next to it, which is not there");
  assert.equal(fs.get("hl-pipe")?.inode, fs.get("usr/lib/pipe"));
  assert.deepEqual(fs.regularFile("abs"), { object: objectHex("libc"), size: 4 });
  await assert.rejects(
    async () =>
      await loadRootfs(repo, [
        (await stack(repo, [[{ path: "d/", type: "dir" }, { path: "h", type: "hardlink", linkname: "d" }]]))[0],
      ]),
    /hardlink "h" points to "d", which is a directory/,
  );
  await repo.close();
});
