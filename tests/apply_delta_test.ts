import assert from "node:assert/strict";
import { deltaship, tempDir } from "./helpers/cli.ts";
import { CASES, expected, FIXTURES } from "./helpers/fixtures.ts";
import { haveTools, run } from "./helpers/interop.ts";
import { pushImage, startRegistry } from "./helpers/registry.ts";
import { describeTree } from "./helpers/tree.ts";
import { referenceOptions, umociUnpack } from "./helpers/unpack.ts";

/** The manifest skopeo finds in a written layout or archive. */
async function skopeoDigest(ref: string): Promise<string> {
  return JSON.parse(await run("skopeo", "--insecure-policy", "inspect", ref)).Digest;
}

Deno.test({
  name: "apply-delta: every reference case to an oci-archive that skopeo reads and umoci unpacks like the target",
  ignore: !haveTools("apply-delta interop", "skopeo", "umoci"),
  async fn() {
    for (const name of CASES) {
      await using tmp = await tempDir();
      const want = await expected(name);
      const repo = `${tmp.path}/repo`;
      assert.equal((await deltaship(repo, "pull", `oci:${FIXTURES}${name}/old:old`)).code, 0);
      const out = `${tmp.path}/new.tar`;
      const r = await deltaship(
        repo,
        "--json",
        "apply-delta",
        `oci:${FIXTURES}${name}/delta`,
        `oci-archive:${out}:new`,
      );
      assert.equal(r.code, 0, `${name}: ${r.stderr}`);
      const result = JSON.parse(r.stdout);
      assert.equal(result.config, want.new_config, `${name}: config kept byte for byte`);
      assert.equal(result.targetManifest, want.new_manifest);
      assert.equal(result.kept, true);
      assert.equal(await skopeoDigest(`oci-archive:${out}:new`), result.manifest);
      // umoci reads archives only through a layout: let skopeo unpack the archive into one.
      await run("skopeo", "--insecure-policy", "copy", `oci-archive:${out}:new`, `oci:${tmp.path}/copy:new`);
      await umociUnpack(`${tmp.path}/copy`, "new", `${tmp.path}/ours`);
      await umociUnpack(`${FIXTURES}${name}/new`, "new", `${tmp.path}/reference`);
      assert.deepEqual(
        await describeTree(`${tmp.path}/ours`, referenceOptions()),
        await describeTree(`${tmp.path}/reference`, referenceOptions()),
        name,
      );
      const images = JSON.parse((await deltaship(repo, "--json", "images")).stdout);
      assert.ok(images.some((i: { manifest: string }) => i.manifest === want.new_manifest), "target kept");
    }
  },
});

Deno.test({
  name: "apply-delta: zstd layers into an oci: layout, --no-keep, and from a registry",
  ignore: !haveTools("apply-delta zstd and registry", "skopeo", "docker-registry"),
  async fn() {
    await using tmp = await tempDir();
    const want = await expected("basic");
    const repo = `${tmp.path}/repo`;
    assert.equal((await deltaship(repo, "pull", `oci:${FIXTURES}basic/old:old`)).code, 0);
    const r = await deltaship(
      repo,
      "--json",
      "apply-delta",
      "--compression",
      "zstd",
      "--no-keep",
      `oci:${FIXTURES}basic/delta`,
      `oci:${tmp.path}/layout:v2`,
    );
    assert.equal(r.code, 0, r.stderr);
    const result = JSON.parse(r.stdout);
    assert.equal(result.kept, false);
    assert.ok(result.layers.every((l: { mediaType: string }) => l.mediaType.endsWith("+zstd")));
    assert.equal(await skopeoDigest(`oci:${tmp.path}/layout:v2`), result.manifest);
    await run("skopeo", "--insecure-policy", "copy", `oci:${tmp.path}/layout:v2`, `oci:${tmp.path}/copy:v2`);
    const images = JSON.parse((await deltaship(repo, "--json", "images")).stdout);
    assert.deepEqual(images.map((i: { manifest: string }) => i.manifest), [
      JSON.parse(await Deno.readTextFile(`${FIXTURES}basic/old/index.json`)).manifests[0].digest,
    ]);

    await using reg = await startRegistry();
    await pushImage(`oci:${FIXTURES}basic/delta`, `docker://${reg.host}/app:old-to-new`);
    const fromRegistry = await deltaship(
      repo,
      "--json",
      "apply-delta",
      `docker://${reg.host}/app:old-to-new`,
      `oci-archive:${tmp.path}/r.tar`,
    );
    assert.equal(fromRegistry.code, 0, fromRegistry.stderr);
    const rr = JSON.parse(fromRegistry.stdout);
    assert.equal(rr.targetManifest, want.new_manifest);
    assert.equal(rr.keptAs, "old-to-new");
    assert.equal(await skopeoDigest(`oci-archive:${tmp.path}/r.tar`), rr.manifest);
    assert.equal((await deltaship(repo, "fsck")).code, 0);
  },
});

Deno.test("apply-delta: a missing source image or a non-delta fails clearly and writes nothing", async () => {
  await using tmp = await tempDir();
  const repo = `${tmp.path}/repo`;
  const noSource = await deltaship(repo, "apply-delta", `oci:${FIXTURES}basic/delta`, `oci-archive:${tmp.path}/x.tar`);
  assert.equal(noSource.code, 1);
  assert.match(
    noSource.stderr,
    /^deltaship: delta \S+ \(sha256:[0-9a-f]{64}\) needs its source image \(manifest sha256:[0-9a-f]{64}, config sha256:[0-9a-f]{64}\), which is not in the repository; pull it first/,
  );
  const notDelta = await deltaship(repo, "apply-delta", `oci:${FIXTURES}basic/old:old`, `oci:${tmp.path}/y`);
  assert.equal(notDelta.code, 1);
  assert.match(notDelta.stderr, /is not an oci-delta artifact; to write out an image use pull, then export/);
  const badDest = await deltaship(repo, "apply-delta", `oci:${FIXTURES}basic/delta`, `docker://x/y`);
  assert.equal(badDest.code, 2);
  assert.deepEqual([...Deno.readDirSync(tmp.path)].map((e) => e.name), ["repo"]);
});
