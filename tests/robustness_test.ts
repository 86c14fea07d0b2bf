import assert from "node:assert/strict";
import { deltaship, deltashipCommand, deltashipProcess, tempDir } from "./helpers/cli.ts";
import { sampleTar, writeImage } from "./helpers/oci.ts";
import { buildTar } from "./helpers/tar.ts";
import { sha256 } from "../src/util/digest.ts";
import { largestFile, noise } from "./helpers/data.ts";

Deno.test("a pull killed with SIGKILL midway leaves a clean repository, and the same pull then succeeds", async () => {
  await using tmp = await tempDir();
  const img = await writeImage(`${tmp.path}/l`, {
    tag: "big",
    layers: [
      { tar: sampleTar("small") },
      { tar: buildTar([{ path: "huge.bin", content: noise(100 << 20, 7) }]), compression: "none" },
    ],
  });
  const repo = `${tmp.path}/repo`;
  await writeImage(`${tmp.path}/l`, { tag: "other", layers: [{ tar: sampleTar("other") }] });
  assert.equal((await deltaship(repo, "pull", `oci:${tmp.path}/l:other`)).code, 0);
  const before = (await deltaship(repo, "--json", "images")).stdout;

  const child = deltashipCommand(["--repo", repo, "-j", "1", "pull", `oci:${tmp.path}/l:big`]).spawn();
  const deadline = Date.now() + 30_000;
  while (largestFile(`${repo}/tmp`) < (8 << 20)) {
    assert.ok(Date.now() < deadline, "pull never started writing");
    await new Promise((r) => setTimeout(r, 2));
  }
  child.kill("SIGKILL");
  const status = await child.status;
  assert.equal(status.signal, "SIGKILL");
  await child.stdout.cancel();
  await child.stderr.cancel();

  assert.equal((await deltaship(repo, "--json", "images")).stdout, before);
  const fsck = await deltaship(repo, "fsck");
  assert.equal(fsck.code, 0, fsck.stdout);
  assert.equal(await Deno.stat(`${repo}/layers/sha256/${img.diffIds[1].slice(7)}`).catch(() => null), null);
  // The dead pull's temporary files were swept when the repository was next opened.
  assert.deepEqual([...Deno.readDirSync(`${repo}/tmp`)], []);

  const again = await deltashipProcess(["--repo", repo, "--json", "pull", `oci:${tmp.path}/l:big`]);
  assert.equal(again.code, 0, again.stderr);
  assert.equal(JSON.parse(again.stdout).manifest, img.manifest);
  const layer = await deltashipProcess(["--repo", repo, "layer", img.diffIds[1]]);
  assert.equal(sha256(layer.stdoutBytes), img.diffIds[1]);
  assert.equal((await deltaship(repo, "fsck")).code, 0);
});

Deno.test("concurrent pulls into one repository all succeed", async () => {
  await using tmp = await tempDir();
  const shared = buildTar([{ path: "shared.bin", content: noise(4 << 20, 3) }]);
  const a = await writeImage(`${tmp.path}/l`, { tag: "a", layers: [{ tar: shared }, { tar: sampleTar("a") }] });
  const b = await writeImage(`${tmp.path}/l`, { tag: "b", layers: [{ tar: shared }, { tar: sampleTar("b") }] });
  const repo = `${tmp.path}/repo`;
  const runs = await Promise.all([
    deltashipProcess(["--repo", repo, "--json", "pull", `oci:${tmp.path}/l:a`]),
    deltashipProcess(["--repo", repo, "--json", "pull", `oci:${tmp.path}/l:a`, "a2"]),
    deltashipProcess(["--repo", repo, "--json", "pull", `oci:${tmp.path}/l:b`]),
  ]);
  for (const r of runs) assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(runs.map((r) => JSON.parse(r.stdout).manifest), [a.manifest, a.manifest, b.manifest]);
  const images = JSON.parse((await deltaship(repo, "--json", "images")).stdout);
  assert.deepEqual(images.map((i: { tags: string[] }) => i.tags.join()).sort(), ["a,a2", "b"]);
  assert.equal((await deltaship(repo, "fsck")).code, 0);
});
