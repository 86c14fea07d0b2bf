import assert from "node:assert/strict";
import { deltaship, tempDir } from "./helpers/cli.ts";
import { startOverlapProxy } from "./helpers/fault_proxy.ts";
import { CASES, checkLayers, expected, FIXTURES } from "./helpers/fixtures.ts";
import { haveTools } from "./helpers/interop.ts";
import { pushImage, startRegistry } from "./helpers/registry.ts";

const TOOLS = ["docker-registry", "skopeo"];

Deno.test({
  name: "delta pull from a registry: every reference case via docker://.../app:old-to-new",
  ignore: !haveTools("delta registry pulls", ...TOOLS),
  async fn() {
    await using reg = await startRegistry();
    for (const name of CASES) {
      await using tmp = await tempDir();
      const want = await expected(name);
      await pushImage(`oci:${FIXTURES}${name}/old:old`, `docker://${reg.host}/${name}:old`);
      await pushImage(`oci:${FIXTURES}${name}/delta`, `docker://${reg.host}/${name}:old-to-new`);
      const repo = `${tmp.path}/repo`;
      const old = await deltaship(repo, "pull", `docker://${reg.host}/${name}:old`);
      assert.equal(old.code, 0, old.stderr);
      const r = await deltaship(repo, "--json", "pull", `docker://${reg.host}/${name}:old-to-new`, "--name", "new");
      assert.equal(r.code, 0, `${name}: ${r.stderr}`);
      const out = JSON.parse(r.stdout);
      assert.equal(out.manifest, want.new_manifest, name);
      assert.equal(out.config, want.new_config, name);
      assert.equal(out.name, "new");
      assert.ok(out.delta, `${name} was applied as a delta`);
      await checkLayers(repo, want.diff_ids);
      const again = await deltaship(repo, "pull", `docker://${reg.host}/${name}:old-to-new`, "new");
      assert.match(again.stdout, /already present/);
    }
  },
});

Deno.test({
  name: "delta pull from a registry downloads one delta blob at a time unless --max-downloads says more",
  ignore: !haveTools("delta registry downloads", ...TOOLS),
  async fn() {
    await using tmp = await tempDir();
    await using reg = await startRegistry();
    await pushImage(`oci:${FIXTURES}basic/old:old`, `docker://${reg.host}/app:old`);
    await pushImage(`oci:${FIXTURES}basic/delta`, `docker://${reg.host}/app:old-to-new`);
    const delta = JSON.parse(await Deno.readTextFile(`${FIXTURES}basic/delta/index.json`)).manifests[0].digest;
    const manifest = JSON.parse(await Deno.readTextFile(`${FIXTURES}basic/delta/blobs/sha256/${delta.slice(7)}`));
    const shipped = manifest.layers
      .filter((l: { annotations: Record<string, string> }) =>
        l.annotations["io.github.containers.delta.content"] === "image-layer"
      )
      .map((l: { digest: string }) => l.digest);
    assert.equal(shipped.length, 2);
    await using proxy = startOverlapProxy(reg.url, new Set(shipped));
    const want = await expected("basic");
    for (const [extra, peak] of [[[], 1], [["--max-downloads", "2"], 2]] as const) {
      const repo = `${tmp.path}/repo${peak}`;
      assert.equal((await deltaship(repo, "pull", `docker://${proxy.host}/app:old`)).code, 0);
      proxy.reset();
      const r = await deltaship(repo, "--json", "-j", "4", "pull", ...extra, `docker://${proxy.host}/app:old-to-new`);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(JSON.parse(r.stdout).manifest, want.new_manifest);
      assert.equal(proxy.peak(), peak, `with ${extra.join(" ") || "defaults"}`);
    }
  },
});
