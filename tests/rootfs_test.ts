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
