import assert from "node:assert/strict";
import { DeltaAnnotation, DeltaContent } from "../src/delta/annotations.ts";
import { sha256 } from "../src/util/digest.ts";
import { deltaship, tempDir } from "./helpers/cli.ts";
import { expectCleanFailure } from "./helpers/failure.ts";
import { checkLayers } from "./helpers/fixtures.ts";
import { writeImage } from "./helpers/oci.ts";
import { buildTar } from "./helpers/tar.ts";
import { tarDiff, type TarDiffOp, writeDelta } from "./helpers/tardiff.ts";

const base = buildTar([{ path: "etc/", type: "dir" }, { path: "etc/os-release", content: "ID=test\n" }]);

Deno.test("quirk: an original layer labelled tar+gzip whatever its compression (zstd, plain tar) is sniffed, and stored as the target manifest lists it", async () => {
  for (const compression of ["zstd", "none", "gzip"] as const) {
    await using tmp = await tempDir();
    const added = buildTar([{ path: "opt/", type: "dir" }, {
      path: `opt/${compression}.txt`,
      content: "x".repeat(5000),
    }]);
    const old = await writeImage(`${tmp.path}/old`, { tag: "old", layers: [{ tar: base }] });
    const target = await writeImage(`${tmp.path}/new`, {
      tag: "new",
      layers: [{ tar: base }, { tar: added, compression }],
    });
    await writeDelta(`${tmp.path}/delta`, {
      source: old,
      target,
      targetDir: `${tmp.path}/new`,
      layers: ["reused", "original"],
      // As oci-delta writes it: the shipped original is labelled tar+gzip.
      mutate: (m) => {
        for (const l of m.layers) {
          if (l.annotations[DeltaAnnotation.content] === DeltaContent.imageLayer) {
            l.mediaType = "application/vnd.oci.image.layer.v1.tar+gzip";
          }
        }
      },
    });
    for (const how of ["pull", "apply-delta"]) {
      const repo = `${tmp.path}/repo-${how}`;
      assert.equal((await deltaship(repo, "pull", `oci:${tmp.path}/old:old`)).code, 0);
      const args = how === "pull"
        ? ["pull", `oci:${tmp.path}/delta`, "new"]
        : ["apply-delta", "--name", "new", `oci:${tmp.path}/delta`, `oci:${tmp.path}/out-${compression}`];
      const r = await deltaship(repo, "--json", ...args);
      assert.equal(r.code, 0, `${compression} ${how}: ${r.stderr}`);
      const stored = await deltaship(repo, "inspect", "new", "--manifest");
      assert.equal(sha256(stored.stdoutBytes), target.manifest, "the target manifest, byte for byte");
      const inspect = JSON.parse((await deltaship(repo, "--json", "inspect", "new")).stdout);
      assert.equal(inspect.layers[1].mediaType, target.layers[1].mediaType);
      await checkLayers(repo, target.diffIds);
    }
  }
});

/** The old image of the symlink cases: a library behind a file link, a directory link, a loop, a dangling link. */
const linked = buildTar([
  { path: "usr/", type: "dir" },
  { path: "usr/lib/", type: "dir" },
  { path: "usr/lib/libfoo.so.1", content: "the library, version 1\n".repeat(50) },
  { path: "usr/lib/libfoo.so", type: "symlink", linkname: "libfoo.so.1" },
  { path: "lib", type: "symlink", linkname: "/usr/lib" },
  { path: "up", type: "symlink", linkname: "../../../../usr" },
  { path: "loop", type: "symlink", linkname: "loop2" },
  { path: "loop2", type: "symlink", linkname: "loop" },
  { path: "dangling", type: "symlink", linkname: "usr/nothing" },
]);

Deno.test("quirk: an Open path that is a symbolic link in the source is followed inside the source's root; loops and dangling links fail naming the path", async () => {
  await using tmp = await tempDir();
  const content = "the library, version 1\n".repeat(50);
  const newTar = buildTar([{ path: "copy.txt", content }]);
  const headerAt = newTar.subarray(0, 512);
  const rest = newTar.subarray(512 + Math.ceil(content.length / 512) * 512);
  const old = await writeImage(`${tmp.path}/old`, { tag: "old", layers: [{ tar: linked }] });
  const target = await writeImage(`${tmp.path}/new`, { tag: "new", layers: [{ tar: newTar }] });
  const padding = new Uint8Array(Math.ceil(content.length / 512) * 512 - content.length);
  const deltaFor = async (name: string, open: string) => {
    const ops: TarDiffOp[] = [{ data: headerAt }, { open }, { copy: content.length }, { data: padding }, {
      data: rest,
    }];
    await writeDelta(`${tmp.path}/${name}`, {
      source: old,
      target,
      targetDir: `${tmp.path}/new`,
      layers: [{ tardiff: tarDiff(ops) }],
    });
    return `oci:${tmp.path}/${name}`;
  };
  for (const [i, open] of ["usr/lib/libfoo.so", "lib/libfoo.so", "lib/libfoo.so.1", "up/lib/libfoo.so"].entries()) {
    const repo = `${tmp.path}/ok-${i}`;
    assert.equal((await deltaship(repo, "pull", `oci:${tmp.path}/old:old`)).code, 0);
    const r = await deltaship(repo, "--json", "pull", await deltaFor(`ok-${i}`, open), "new");
    assert.equal(r.code, 0, `${open}: ${r.stderr}`);
    assert.equal(JSON.parse(r.stdout).manifest, target.manifest);
    await checkLayers(repo, target.diffIds);
  }
  const repo = `${tmp.path}/bad`;
  assert.equal((await deltaship(repo, "pull", `oci:${tmp.path}/old:old`)).code, 0);
  await expectCleanFailure(
    repo,
    ["pull", await deltaFor("loop", "loop")],
    /^deltaship: .*tar-diff: Open at byte \d+: "loop" is a symbolic link loop in the source image/,
  );
  await expectCleanFailure(
    repo,
    ["pull", await deltaFor("dangling", "dangling")],
    /^deltaship: .*tar-diff: Open at byte \d+: "dangling" is a symbolic link that leads to nothing in the source image/,
  );
  await expectCleanFailure(
    repo,
    ["pull", await deltaFor("through", "lib/nothing")],
    /^deltaship: .*tar-diff: Open at byte \d+: "lib\/nothing" is a symbolic link that leads to nothing/,
  );
  await expectCleanFailure(
    repo,
    ["pull", await deltaFor("dir", "lib")],
    /^deltaship: .*tar-diff: Open at byte \d+: "lib" is not a regular file in the source image/,
  );
});
