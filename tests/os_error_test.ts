/**
 * A full disk names the path it could not write (issue 20, item 11), whatever
 * the command: `export`, `create-delta` (its output and its tar-diffs in the
 * repository), `pull` and `upgrade` say "no space left on device" with the
 * destination or file, in one line, and leave the repository as it was. On a
 * small tmpfs, as root (skipped visibly otherwise; see helpers/full_disk.ts).
 */
import assert from "node:assert/strict";
import { deltaship, tempDir } from "./helpers/cli.ts";
import { noise } from "./helpers/data.ts";
import { expectCleanFailure, repoFiles } from "./helpers/failure.ts";
import { fillUp, withTmpfs } from "./helpers/full_disk.ts";
import { writeImage } from "./helpers/oci.ts";
import { unpackFixtureV1 } from "./helpers/repo_v1.ts";
import { buildTar } from "./helpers/tar.ts";
import { sha256 } from "../src/util/digest.ts";

/** Layouts `old` and `new` of one 3 MB layer each (different noise), under `dir`. */
async function twoImages(dir: string): Promise<void> {
  for (const [name, seed] of [["old", 1], ["new", 2]] as const) {
    const tar = buildTar([{ path: "data/blob.bin", content: noise(3 << 20, seed) }, { path: "etc/x", content: "x" }]);
    await writeImage(`${dir}/${name}`, { tag: name, layers: [{ tar, compression: "none" }] });
  }
}

/** Pulls the layouts of {@link twoImages} into `repo` as `old` and `new`. */
async function pullBoth(dir: string, repo: string): Promise<void> {
  for (const name of ["old", "new"]) {
    const r = await deltaship(repo, "pull", `oci:${dir}/${name}:${name}`, name);
    assert.equal(r.code, 0, r.stderr);
  }
}

const FULL = "no space left on device";

Deno.test("ENOSPC: export and create-delta into a full filesystem name their destination; nothing is left", async () => {
  await using tmp = await tempDir();
  const repo = `${tmp.path}/repo`;
  await twoImages(tmp.path);
  await pullBoth(tmp.path, repo);
  await withTmpfs("ENOSPC export test", tmp.path, "1m", async (mnt) => {
    for (const dest of [`oci:${mnt}/out`, `oci-archive:${mnt}/out.tar`]) {
      const message = new RegExp(`^deltaship: cannot export to ${dest}: ${FULL}`);
      await expectCleanFailure(repo, ["export", "new", dest], message);
      assert.deepEqual([...Deno.readDirSync(mnt)], [], `${dest}: nothing left in the destination`);
    }
    const dest = `oci:${mnt}/delta`;
    await expectCleanFailure(
      repo,
      ["create-delta", "repo:old", "repo:new", dest],
      new RegExp(`^deltaship: cannot write ${dest}: ${FULL}`),
    );
    assert.deepEqual([...Deno.readDirSync(mnt)], [], "nothing left in the destination");
  });
});

Deno.test("ENOSPC: pull and create-delta with the repository on a full filesystem name the file in it", async () => {
  await using tmp = await tempDir();
  await twoImages(tmp.path);
  await withTmpfs("ENOSPC repository test", tmp.path, "16m", async (mnt) => {
    const repo = `${mnt}/repo`;
    const first = await deltaship(repo, "pull", `oci:${tmp.path}/old:old`, "old");
    assert.equal(first.code, 0, first.stderr);
    const filler = fillUp(mnt);
    const inRepo = new RegExp(`^deltaship: .*cannot write ${repo}/tmp/[^ ]+: ${FULL}`);
    await expectCleanFailure(repo, ["pull", `oci:${tmp.path}/new:new`, "new"], inRepo);
    Deno.removeSync(filler);
    assert.equal((await deltaship(repo, "pull", `oci:${tmp.path}/new:new`, "new")).code, 0);
    fillUp(mnt);
    // The tar-diffs are encoded into the repository's temporary area (in workers).
    await expectCleanFailure(repo, ["create-delta", "repo:old", "repo:new", `oci:${tmp.path}/delta`], inRepo);
  });
});

Deno.test("ENOSPC: an upgrade on a full filesystem names the file, stays version 1, and completes once there is room", async () => {
  await using tmp = await tempDir();
  await withTmpfs("ENOSPC upgrade test", tmp.path, "4m", async (mnt) => {
    const repo = await unpackFixtureV1(mnt);
    const files = () => repoFiles(repo, ["layers", "blobs", "images", "tags", "objects"]);
    const layers = () =>
      [...Deno.readDirSync(`${repo}/layers/sha256`)].map((e) => [
        e.name,
        sha256(Deno.readFileSync(`${repo}/layers/sha256/${e.name}`)),
      ]).sort();
    const before = { files: files(), layers: layers() };
    const filler = fillUp(mnt);
    const r = await deltaship(repo, "upgrade");
    assert.equal(r.code, 1, r.stdout);
    assert.match(r.stderr, new RegExp(`^deltaship: cannot write ${repo}/[^ ]+: ${FULL}\n$`));
    assert.equal(JSON.parse(Deno.readTextFileSync(`${repo}/deltaship-repo.json`)).version, 1);
    assert.deepEqual({ files: files(), layers: layers() }, before, "records, objects, images and tags unchanged");
    assert.deepEqual([...Deno.readDirSync(`${repo}/tmp`)], [], "no temporary files left");
    Deno.removeSync(filler);
    assert.equal((await deltaship(repo, "upgrade")).code, 0);
    const fsck = await deltaship(repo, "fsck");
    assert.equal(fsck.code, 0, fsck.stdout);
  });
});
