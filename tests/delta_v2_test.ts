import assert from "node:assert/strict";
import { deltaship, tempDir } from "./helpers/cli.ts";
import { CASES_V2, checkLayers, expected, FIXTURES_V2 } from "./helpers/fixtures.ts";
import { haveTools } from "./helpers/interop.ts";
import { packArchive } from "./helpers/oci.ts";
import { pushImage, startRegistry } from "./helpers/registry.ts";

/** Pulls `old`, then the delta, into a fresh repository; checks the target's digests and every layer. */
async function applies(repo: string, name: string, oldRef: string, deltaRef: string): Promise<void> {
  const want = await expected(name, FIXTURES_V2);
  const old = await deltaship(repo, "pull", oldRef);
  assert.equal(old.code, 0, old.stderr);
  const r = await deltaship(repo, "--json", "pull", deltaRef, "new");
  assert.equal(r.code, 0, `${name} from ${deltaRef}: ${r.stderr}`);
  const out = JSON.parse(r.stdout);
  assert.ok(out.delta, `${name} was applied as a delta`);
  assert.ok(out.delta.layersRebuilt >= 1, `${name}: a tar-diff was rebuilt`);
  assert.equal(out.manifest, want.new_manifest, name);
  assert.equal(out.config, want.new_config, name);
  await checkLayers(repo, want.diff_ids);
}

Deno.test("oci-delta v2 fixtures (ZstdDict ops from zstd --patch-from): every case applies from oci: and oci-archive:", async () => {
  for (const name of CASES_V2) {
    await using tmp = await tempDir();
    const dir = `${FIXTURES_V2}${name}`;
    await applies(`${tmp.path}/a`, name, `oci:${dir}/old:old`, `oci:${dir}/delta`);
    await packArchive(`${dir}/old`, `${tmp.path}/old.tar`);
    await packArchive(`${dir}/delta`, `${tmp.path}/delta.tar`);
    await applies(`${tmp.path}/b`, name, `oci-archive:${tmp.path}/old.tar:old`, `oci-archive:${tmp.path}/delta.tar`);
  }
});

Deno.test({
  name: "oci-delta v2 fixtures: every case applies from a real registry",
  ignore: !haveTools("v2 delta registry pulls", "docker-registry", "skopeo"),
  async fn() {
    await using reg = await startRegistry();
    for (const name of CASES_V2) {
      await using tmp = await tempDir();
      await pushImage(`oci:${FIXTURES_V2}${name}/old:old`, `docker://${reg.host}/${name}:old`);
      await pushImage(`oci:${FIXTURES_V2}${name}/delta`, `docker://${reg.host}/${name}:old-to-new`);
      await applies(
        `${tmp.path}/repo`,
        name,
        `docker://${reg.host}/${name}:old`,
        `docker://${reg.host}/${name}:old-to-new`,
      );
    }
  },
});
