import assert from "node:assert/strict";
import { DeltaAnnotation } from "../src/delta/annotations.ts";
import { cases, deltaTool, generate, makeDelta } from "../testdata/generate.ts";
import { deltaship, tempDir } from "./helpers/cli.ts";
import { checkDelta, pullDelta } from "./helpers/delta.ts";
import { CASES, CASES_V2, expected, FIXTURES, FIXTURES_V2 } from "./helpers/fixtures.ts";

Deno.test("deno task fixtures: every generated case's delta pulls to exactly the new image; output is deterministic", async () => {
  await using tmp = await tempDir();
  const lines: string[] = [];
  const tool = await generate(`${tmp.path}/a`, (l) => lines.push(l));
  assert.match(lines[0], /^making deltas with (oci-delta \(.*\)|deltaship create-delta)$/);
  const names = cases().map((c) => c.name);
  assert.deepEqual(names.slice(0, 4), ["basic", "edits", "whiteouts", "fallback"]);
  for (const name of names) {
    const dir = `${tmp.path}/a/${name}`;
    const expected = JSON.parse(await Deno.readTextFile(`${dir}/expected.json`));
    assert.equal(expected.made_with, tool);
    const repo = `${tmp.path}/repo-${name}`;
    assert.equal((await deltaship(repo, "pull", `oci:${dir}/old:old`)).code, 0);
    const checked = await checkDelta(repo, `oci:${dir}/delta`);
    assert.equal(checked.digest, expected.delta_manifest);
    assert.equal(checked.manifest.annotations?.["io.github.containers.delta.target"], expected.new_manifest);
    assert.deepEqual(checked.target.diffIds, expected.diff_ids);
    await pullDelta(`${tmp.path}/client-${name}`, `oci:${dir}/old:old`, `oci:${dir}/delta`, {
      manifest: expected.new_manifest,
      diffIds: expected.diff_ids,
    });
  }
  // The same tool makes the same bytes.
  await generate(`${tmp.path}/b`);
  for (const name of names) {
    const a = JSON.parse(await Deno.readTextFile(`${tmp.path}/a/${name}/expected.json`));
    const b = JSON.parse(await Deno.readTextFile(`${tmp.path}/b/${name}/expected.json`));
    assert.deepEqual(a, b, name);
  }
});

/** Copies a directory tree. */
async function copyTree(from: string, to: string): Promise<void> {
  await Deno.mkdir(to, { recursive: true });
  for await (const e of Deno.readDir(from)) {
    if (e.isDirectory) await copyTree(`${from}/${e.name}`, `${to}/${e.name}`);
    else await Deno.copyFile(`${from}/${e.name}`, `${to}/${e.name}`);
  }
}

// deno-lint-ignore no-explicit-any
type Json = any;

function deltaManifest(dir: string, digest: string): Json {
  return JSON.parse(Deno.readTextFileSync(`${dir}/delta/blobs/sha256/${digest.slice(7)}`));
}

Deno.test("deno task fixtures' delta step, on the images of the reference-made fixtures, meets their expectations", async () => {
  // The generated cases can only be checked against themselves; these images came with deltas and expected
  // digests made by the Go tools (testdata/oci-delta, -v2: see their READMEs), which the same step must reach.
  await using tmp = await tempDir();
  const tool = deltaTool();
  for (const [fixtures, names] of [[FIXTURES, CASES], [FIXTURES_V2, CASES_V2]] as const) {
    for (const name of names) {
      const what = `${fixtures.split("/").at(-2)}/${name}`;
      const dir = `${tmp.path}/${what}`;
      await copyTree(`${fixtures}${name}/old`, `${dir}/old`);
      await copyTree(`${fixtures}${name}/new`, `${dir}/new`);
      const made = await makeDelta(dir, tool, `${tmp.path}/repo`);
      const want = await expected(name, fixtures);
      assert.deepEqual(
        { new_manifest: made.new_manifest, new_config: made.new_config, diff_ids: made.diff_ids },
        { new_manifest: want.new_manifest, new_config: want.new_config, diff_ids: want.diff_ids },
        `${what}: expected.json's digests are the reference's`,
      );
      // The artifact as the reference made it: everything but the tar-diff blobs, and for each target layer
      // shipped, which one (a tar-diff or the original blob, whichever is smaller, may differ).
      const mine = deltaManifest(dir, made.delta_manifest as string);
      const ref = deltaManifest(`${fixtures}${name}`, want.delta_manifest);
      for (const key of ["schemaVersion", "mediaType", "artifactType", "config", "subject", "annotations"]) {
        assert.deepEqual(mine[key], ref[key], `${what}: ${key}`);
      }
      const shipped = (m: Json) => m.layers.map((l: Json) => l.annotations[DeltaAnnotation.to] ?? l.digest);
      assert.deepEqual(shipped(mine), shipped(ref), `${what}: the same entries, in the same order`);
      assert.deepEqual(mine.layers.slice(0, 2), ref.layers.slice(0, 2), `${what}: the embedded manifest and config`);
      // Its blobs decode, with the strict reference decoder, to the reference's diff_ids; and a client gets the image.
      const repo = `${tmp.path}/check-${what.replace("/", "-")}`;
      assert.equal((await deltaship(repo, "pull", `oci:${dir}/old:old`)).code, 0);
      assert.deepEqual((await checkDelta(repo, `oci:${dir}/delta`)).target.diffIds, want.diff_ids);
      await pullDelta(`${tmp.path}/client-${what.replace("/", "-")}`, `oci:${dir}/old:old`, `oci:${dir}/delta`, {
        manifest: want.new_manifest,
        diffIds: want.diff_ids,
      });
    }
  }
});
