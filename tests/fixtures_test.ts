import assert from "node:assert/strict";
import { cases, generate } from "../testdata/generate.ts";
import { deltaship, tempDir } from "./helpers/cli.ts";
import { checkDelta, pullDelta } from "./helpers/delta.ts";

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
