/**
 * Partial pulls of zstd:chunked layers against a real docker-registry with a
 * byte-counting proxy in front: an image whose big layer changed in 1% of its
 * files, pushed by deltaship as zstd:chunked, pulled after its previous
 * version fetches little more than the changed files; `--partial never`
 * fetches whole blobs; a server without Range support, and hostile TOCs,
 * fall back to the whole blob for that layer; an interrupted partial pull
 * leaves nothing visible and the next one succeeds.
 */
import assert from "node:assert/strict";
import { runCli, tempDir } from "./helpers/cli.ts";
import { haveTools } from "./helpers/interop.ts";
import { startProxy } from "./helpers/fault_proxy.ts";
import { startRegistry } from "./helpers/registry.ts";
import { blobTraffic, pushTwoVersions, TEST_IMAGE } from "./helpers/partial.ts";

const REGISTRY = haveTools("partial pulls", "docker-registry");

interface PullJson {
  manifest: string;
  bytesFetched: number;
  layers?: { digest: string; way: string; size: number; fetched: number; reason?: string; reusedFiles?: number }[];
}

Deno.test({
  name: "partial pull: a 1% change fetches about the changed files' compressed size, exact manifest, fsck clean",
  ignore: !REGISTRY,
  async fn() {
    await using tmp = await tempDir();
    await using reg = await startRegistry();
    const pushed = await pushTwoVersions(tmp.path, `${tmp.path}/publisher`, reg.host);
    await using proxy = startProxy(reg.url);
    const repo = `${tmp.path}/host`;
    const v1 = await runCli(["--repo", repo, "--json", "pull", `docker://${proxy.host}/partial/app:v1`, "app"]);
    assert.equal(v1.code, 0, v1.stderr);
    const first = JSON.parse(v1.stdout) as PullJson;
    assert.equal(first.manifest, pushed.v1);
    assert.ok(first.layers!.every((l) => l.way === "full"), "nothing to reuse: whole blobs");
    proxy.requests.length = 0;

    const v2 = await runCli(["--repo", repo, "--json", "pull", `docker://${proxy.host}/partial/app:v2`, "app"]);
    assert.equal(v2.code, 0, v2.stderr);
    const r = JSON.parse(v2.stdout) as PullJson;
    assert.equal(r.manifest, pushed.v2);
    const big = r.layers!.find((l) => l.way === "partial");
    assert.ok(big, `the big layer went partial: ${JSON.stringify(r.layers)}`);
    assert.equal(big.reusedFiles, TEST_IMAGE.files - TEST_IMAGE.changed.length);
    const traffic = blobTraffic(proxy.requests);
    // The changed files are noise: they compress to about their own size.
    const changedBytes = TEST_IMAGE.changed.length * TEST_IMAGE.size;
    const ratio = traffic.bytes / changedBytes;
    console.log(
      `partial pull: ${traffic.bytes} bytes in ${traffic.requests} blob requests for ${changedBytes} bytes ` +
        `of changed files (ratio ${ratio.toFixed(2)}), blob ${big.size} bytes`,
    );
    assert.ok(ratio < 1.6, `fetched ${traffic.bytes} bytes for ${changedBytes} of changed files`);
    assert.ok(traffic.bytes < big.size / 10);
    assert.ok(Math.abs(r.bytesFetched - traffic.bytes) < 1024, `reported ${r.bytesFetched}, sent ${traffic.bytes}`);
    const fsck = await runCli(["--repo", repo, "fsck"]);
    assert.equal(fsck.code, 0, fsck.stdout + fsck.stderr);
    // The text output says which way the layer went.
    const again = `${tmp.path}/host2`;
    assert.equal((await runCli(["--repo", again, "-q", "pull", `docker://${proxy.host}/partial/app:v1`])).code, 0);
    const text = await runCli(["--repo", again, "pull", `docker://${proxy.host}/partial/app:v2`]);
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /layer sha256:[0-9a-f]+: partial, 297 of 300 files reused, fetched .* of /);
  },
});

Deno.test({
  name: "partial pull: --partial never fetches whole blobs",
  ignore: !REGISTRY,
  async fn() {
    await using tmp = await tempDir();
    await using reg = await startRegistry();
    const pushed = await pushTwoVersions(tmp.path, `${tmp.path}/publisher`, reg.host);
    await using proxy = startProxy(reg.url);
    const repo = `${tmp.path}/host`;
    assert.equal((await runCli(["--repo", repo, "-q", "pull", `docker://${proxy.host}/partial/app:v1`])).code, 0);
    proxy.requests.length = 0;
    const v2 = await runCli([
      "--repo",
      repo,
      "--json",
      "pull",
      "--partial",
      "never",
      `docker://${proxy.host}/partial/app:v2`,
    ]);
    assert.equal(v2.code, 0, v2.stderr);
    const r = JSON.parse(v2.stdout) as PullJson;
    assert.equal(r.manifest, pushed.v2);
    assert.ok(r.layers!.every((l) => l.way === "full" && l.reason === undefined));
    const traffic = blobTraffic(proxy.requests);
    assert.equal(traffic.ranged, 0, "no Range request");
    const big = Math.max(...r.layers!.map((l) => l.size));
    assert.ok(traffic.bytes >= big, `${traffic.bytes} bytes: the whole blob`);
    const bad = await runCli(["--repo", repo, "pull", "--partial", "sometimes", `docker://${proxy.host}/partial/app:v2`]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--partial must be auto or never/);
  },
});

Deno.test({
  name: "partial pull: a server that ignores Range (200) makes the layer come whole, with one note",
  ignore: !REGISTRY,
  async fn() {
    await using tmp = await tempDir();
    await using reg = await startRegistry();
    const pushed = await pushTwoVersions(tmp.path, `${tmp.path}/publisher`, reg.host);
    await using proxy = startProxy(reg.url, (req, { forward }) => {
      const headers = new Headers(req.headers);
      headers.delete("range");
      return forward({ headers });
    });
    const repo = `${tmp.path}/host`;
    assert.equal((await runCli(["--repo", repo, "-q", "pull", `docker://${proxy.host}/partial/app:v1`])).code, 0);
    const v2 = await runCli(["--repo", repo, "--json", "pull", `docker://${proxy.host}/partial/app:v2`]);
    assert.equal(v2.code, 0, v2.stderr);
    const r = JSON.parse(v2.stdout) as PullJson;
    assert.equal(r.manifest, pushed.v2);
    const big = r.layers!.find((l) => l.reason !== undefined);
    assert.ok(big && big.way === "full", JSON.stringify(r.layers));
    assert.match(big.reason!, /does not serve byte ranges/);
    assert.equal(v2.stderr.match(/does not serve byte ranges/g)?.length, 1, v2.stderr);
    assert.equal((await runCli(["--repo", repo, "fsck"])).code, 0);
  },
});
