/**
 * `push` against a real registry (Debian's docker-registry, distribution 2.8,
 * which has no referrers API): from the repository and from layouts, read back
 * with skopeo; blobs the registry has skipped and cross-repository mounts, with
 * the requests counted in a proxy; uploads dropped midway resumed or started
 * over; Basic and Bearer authentication with the push scope.
 */
import assert from "node:assert/strict";
import { sha256 } from "../src/util/digest.ts";
import { type CliResult, runCli, tempDir } from "./helpers/cli.ts";
import { noise } from "./helpers/data.ts";
import { expectCleanFailure } from "./helpers/failure.ts";
import { countRequests, startDropProxy, startProxy } from "./helpers/fault_proxy.ts";
import { FIXTURES } from "./helpers/fixtures.ts";
import { haveTools, run } from "./helpers/interop.ts";
import { packArchive, sampleTar, writeImage, writeIndex, type WrittenImage } from "./helpers/oci.ts";
import { copyFromRegistry, rawManifest, startRegistry } from "./helpers/registry.ts";
import { buildTar } from "./helpers/tar.ts";
import { startTokenIssuer } from "./helpers/token_issuer.ts";

const TOOLS = ["docker-registry", "skopeo"];
const dec = new TextDecoder();

/** Runs the CLI with an isolated HOME, fast retries and small upload chunks (so blobs take several). */
function cli(home: string, args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  return runCli(args, { HOME: home, DELTASHIP_RETRY_BASE_MS: "5", DELTASHIP_UPLOAD_CHUNK_SIZE: "65536", ...env });
}

/** The raw config of `reference` (`HOST/REPO:TAG`), as skopeo reads it. */
async function rawConfig(reference: string): Promise<Uint8Array> {
  const out = await new Deno.Command("skopeo", {
    args: ["inspect", "--raw", "--config", "--tls-verify=false", `docker://${reference}`],
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) throw new Error(`skopeo inspect --config ${reference}: ${dec.decode(out.stderr)}`);
  return out.stdout;
}

/** An image with a small layer, an incompressible 300 kB one (several chunks) and a zstd one. */
async function sampleImage(layout: string, tag: string, seed = 1): Promise<WrittenImage> {
  return await writeImage(layout, {
    tag,
    layers: [
      { tar: sampleTar(`s${seed}`) },
      { tar: buildTar([{ path: "data.bin", content: noise(300_000, seed) }]), compression: "none" },
      { tar: sampleTar(`z${seed}`), compression: "zstd" },
    ],
  });
}

Deno.test({
  name: "push: layouts (image, index, delta artifact) byte for byte and repository images as export writes them",
  ignore: !haveTools("push", ...TOOLS),
  async fn() {
    await using tmp = await tempDir();
    await using reg = await startRegistry();
    const home = tmp.path;
    const layout = `${tmp.path}/layout`;
    const img = await sampleImage(layout, "v1");
    const r = `${tmp.path}/r`;
    const push = (repo: string, json: boolean, ...args: string[]) =>
      cli(home, ["--repo", repo, ...(json ? ["--json"] : []), "push", ...args]);

    // An image from a directory layout, and from an archive of it.
    const a = await push(r, true, `oci:${layout}:v1`, `docker://${reg.host}/app:v1`);
    assert.equal(a.code, 0, a.stderr);
    const pushed = JSON.parse(a.stdout);
    assert.equal(pushed.manifest, img.manifest);
    assert.equal(pushed.config, img.config);
    assert.equal(pushed.tag, "v1");
    assert.deepEqual(pushed.blobs.map((b: { outcome: string }) => b.outcome), [
      "uploaded",
      "uploaded",
      "uploaded",
      "uploaded",
    ]);
    assert.deepEqual(await rawManifest(`${reg.host}/app:v1`), img.manifestBytes);
    assert.deepEqual(await rawConfig(`${reg.host}/app:v1`), img.configBytes);
    await packArchive(layout, `${tmp.path}/app.tar`);
    const b = await push(r, false, `oci-archive:${tmp.path}/app.tar:v1`, `docker://${reg.host}/arch`);
    assert.equal(b.code, 0, b.stderr);
    assert.match(
      b.stdout,
      /to docker:\/\/127\.0\.0\.1:\d+\/arch:v1 \(4 blobs: 4 uploaded/,
      "the tag defaults to the layout's",
    );
    assert.deepEqual(await rawManifest(`${reg.host}/arch:v1`), img.manifestBytes);
    // skopeo copies it back out whole (every blob verified).
    await copyFromRegistry(`docker://${reg.host}/arch:v1`, `oci:${tmp.path}/back:v1`);

    // A multi-platform index: the images by digest first, then the index under the tag, all byte for byte.
    const amd = await writeImage(layout, { layers: [{ tar: sampleTar("amd") }], noIndexEntry: true });
    const arm = await writeImage(layout, { layers: [{ tar: sampleTar("arm") }], noIndexEntry: true });
    const index = await writeIndex(layout, "multi", [
      { image: amd, platform: { os: "linux", architecture: "amd64" } },
      { image: arm, platform: { os: "linux", architecture: "arm64" } },
    ]);
    const m = await push(r, true, `oci:${layout}:multi`, `docker://${reg.host}/multi`);
    assert.equal(m.code, 0, m.stderr);
    assert.equal(JSON.parse(m.stdout).manifest, index);
    assert.equal(JSON.parse(m.stdout).manifests, 3);
    assert.equal(sha256(await rawManifest(`${reg.host}/multi:multi`)), index);
    assert.deepEqual(await rawManifest(`${reg.host}/multi@${arm.manifest}`), arm.manifestBytes);

    // A delta artifact: copied as it is, and listed in its target's fallback index (2.8 has no referrers API).
    const deltaLayout = `${FIXTURES}basic/delta`;
    const deltaDesc = JSON.parse(await Deno.readTextFile(`${deltaLayout}/index.json`)).manifests[0];
    const deltaBytes = await Deno.readFile(`${deltaLayout}/blobs/sha256/${deltaDesc.digest.slice(7)}`);
    const delta = JSON.parse(dec.decode(deltaBytes));
    const d = await push(r, true, `oci:${deltaLayout}`, `docker://${reg.host}/app:basic-delta`);
    assert.equal(d.code, 0, d.stderr);
    assert.equal(JSON.parse(d.stdout).referrer, "fallback-tag");
    assert.deepEqual(await rawManifest(`${reg.host}/app:basic-delta`), deltaBytes);
    const fallback = JSON.parse(
      dec.decode(await rawManifest(`${reg.host}/app:sha256-${delta.subject.digest.slice(7)}`)),
    );
    assert.equal(fallback.mediaType, "application/vnd.oci.image.index.v1+json");
    assert.deepEqual(fallback.manifests, [{
      mediaType: deltaDesc.mediaType,
      digest: deltaDesc.digest,
      size: deltaBytes.length,
      artifactType: delta.artifactType,
      annotations: delta.annotations,
    }]);
    // Pushing it again adds no second entry, and says so.
    const d2 = await push(r, false, `oci:${deltaLayout}`, `docker://${reg.host}/app:basic-delta`);
    assert.equal(d2.code, 0, d2.stderr);
    assert.match(
      d2.stdout,
      /\nreferrer: already in the subject's fallback index \(the registry has no referrers API\)\n/,
    );
    const again = JSON.parse(dec.decode(await rawManifest(`${reg.host}/app:sha256-${delta.subject.digest.slice(7)}`)));
    assert.equal(again.manifests.length, 1);

    // From the repository: rebuilt, compressed, config byte for byte (same image ID); the same output every time.
    const repo = `${tmp.path}/repo`;
    assert.equal((await cli(home, ["--repo", repo, "pull", `oci:${layout}:v1`, "app"])).code, 0);
    const z = await push(repo, true, "app", `docker://${reg.host}/fromrepo`, "--compression", "zstd");
    assert.equal(z.code, 0, z.stderr);
    const fromRepo = JSON.parse(z.stdout);
    assert.equal(fromRepo.tag, "app");
    assert.equal(fromRepo.config, img.config);
    const manifest = JSON.parse(dec.decode(await rawManifest(`${reg.host}/fromrepo:app`)));
    assert.equal(sha256(await rawManifest(`${reg.host}/fromrepo:app`)), fromRepo.manifest);
    assert.deepEqual(
      manifest.layers.map((l: { mediaType: string }) => l.mediaType),
      Array(3).fill("application/vnd.oci.image.layer.v1.tar+zstd"),
    );
    assert.deepEqual(await rawConfig(`${reg.host}/fromrepo:app`), img.configBytes);
    const z2 = await push(repo, true, "app", `docker://${reg.host}/fromrepo:again`, "--compression", "zstd", "-j", "1");
    assert.equal(JSON.parse(z2.stdout).manifest, fromRepo.manifest, "the same bytes whatever -j");
    // Pulled back into a fresh repository, every layer is the original tar.
    const back = `${tmp.path}/back-repo`;
    const p = await cli(home, ["--repo", back, "--json", "pull", `docker://${reg.host}/fromrepo:app`]);
    assert.equal(p.code, 0, p.stderr);
    assert.equal(JSON.parse(p.stdout).config, img.config);
    for (const [i, diffId] of img.diffIds.entries()) {
      assert.deepEqual((await cli(home, ["--repo", back, "layer", diffId])).stdoutBytes, img.tars[i]);
    }
  },
});

Deno.test({
  name: "push: blobs the registry has are skipped (HEAD) and others mounted from --mount-from (requests counted)",
  ignore: !haveTools("push counts", ...TOOLS),
  async fn() {
    await using tmp = await tempDir();
    await using reg = await startRegistry();
    await using proxy = startProxy(reg.url);
    const layout = `${tmp.path}/layout`;
    const img = await sampleImage(layout, "v1");
    const push = async (dest: string, ...extra: string[]) => {
      proxy.requests.length = 0;
      const r = await cli(tmp.path, [
        "--repo",
        `${tmp.path}/r`,
        "--json",
        "push",
        `oci:${layout}:v1`,
        `docker://${proxy.host}/${dest}`,
        ...extra,
      ]);
      assert.equal(r.code, 0, r.stderr);
      return { result: JSON.parse(r.stdout), counts: countRequests(proxy.requests) };
    };
    const blobBytes = img.configBytes.length + img.layers.reduce((a, l) => a + l.size, 0);

    const first = await push("a:v1");
    // 4 blobs: each HEAD (404), POST, then PATCH chunks of 64 KiB and the closing PUT; the manifest last.
    assert.deepEqual(first.counts.kinds, {
      "HEAD blob": 4,
      "POST upload": 4,
      "PATCH upload": 4, // the 300 kB layer: 4 full chunks, its rest in the PUT
      "PUT upload": 4,
      "PUT manifest": 1,
    });
    assert.equal(first.counts.bytesIn, blobBytes + img.manifestBytes.length);
    assert.equal(first.result.bytesUploaded, blobBytes);
    assert.equal(proxy.requests.at(-1)!.method, "PUT", "the manifest goes last");

    const second = await push("a:v1");
    assert.deepEqual(second.counts.kinds, { "HEAD blob": 4, "PUT manifest": 1 });
    assert.deepEqual(second.result.blobs.map((b: { outcome: string }) => b.outcome), Array(4).fill("exists"));
    assert.equal(second.counts.bytesIn, img.manifestBytes.length);

    const mounted = await push("b:v1", "--mount-from", "a");
    assert.deepEqual(mounted.counts.kinds, { "HEAD blob": 4, "POST upload": 4, "PUT manifest": 1 });
    assert.deepEqual(mounted.result.blobs.map((b: { outcome: string }) => b.outcome), Array(4).fill("mounted"));
    assert.equal(mounted.counts.bytesIn, img.manifestBytes.length);
    assert.deepEqual(await rawManifest(`${reg.host}/b:v1`), img.manifestBytes);

    // A repository that does not have the blob: the mount falls back to the upload session it opens.
    const fallback = await push("c:v1", "--mount-from", "nothing-here");
    assert.deepEqual(fallback.counts.kinds, first.counts.kinds);
    assert.deepEqual(await rawManifest(`${reg.host}/c:v1`), img.manifestBytes);
  },
});

Deno.test({
  name: "push: an upload dropped midway resumes from the registry's Range, or starts over when the session is lost",
  ignore: !haveTools("push drops", ...TOOLS),
  async fn() {
    await using tmp = await tempDir();
    await using reg = await startRegistry();
    const layout = `${tmp.path}/layout`;
    const img = await sampleImage(layout, "v1");
    for (const forward of [false, true]) {
      // The second PATCH (a chunk of the big layer) is cut after 20000 of its 65536 bytes, and so is the next
      // one: Deno's HTTP client sends a request again once by itself when a pooled connection drops under it.
      await using drop = startDropProxy(
        reg.url,
        ({ method, index }) =>
          method === "PATCH" && (index === 1 || index === 2) ? { afterBytes: 20_000, forward } : undefined,
      );
      const repoName = forward ? "restarted" : "resumed";
      const r = await cli(tmp.path, [
        "--repo",
        `${tmp.path}/r`,
        "--json",
        "push",
        `oci:${layout}:v1`,
        `docker://${drop.host}/${repoName}:v1`,
      ]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(JSON.parse(r.stdout).manifest, img.manifest);
      assert.deepEqual(await rawManifest(`${reg.host}/${repoName}:v1`), img.manifestBytes);
      const seen = drop.requests.map((q) => q.method + (q.dropped ? " (dropped)" : ""));
      const i = seen.lastIndexOf("PATCH (dropped)");
      assert.equal(seen.filter((q) => q === "PATCH (dropped)").length, 2, seen.join(", "));
      // Right after the drop the client asks the session's status.
      assert.equal(seen[i + 1], "GET", seen.join(", "));
      if (!forward) {
        // The registry never saw the cut chunk: it is sent again in the same session.
        assert.equal(seen[i + 2], "PATCH", seen.join(", "));
        assert.equal(seen.filter((s) => s === "POST").length, 4, seen.join(", "));
      } else {
        // distribution 2.8 forgets a session a cut-off chunk was written to: the blob starts over.
        assert.equal(seen[i + 2], "POST", seen.join(", "));
        assert.equal(seen.filter((s) => s === "POST").length, 5, seen.join(", "));
      }
    }
    // skopeo reads the resumed blob back whole.
    await copyFromRegistry(`docker://${reg.host}/resumed:v1`, `oci:${tmp.path}/copy:v1`);
  },
});

Deno.test({
  name: "push: relative upload Locations are followed like absolute ones",
  ignore: !haveTools("push relative location", ...TOOLS),
  async fn() {
    await using tmp = await tempDir();
    await using reg = await startRegistry();
    let rewritten = 0;
    await using proxy = startProxy(reg.url, async (_req, { forward }) => {
      const res = await forward();
      const location = res.headers.get("location");
      if (location === null || !location.startsWith("http")) return res;
      const headers = new Headers(res.headers);
      const u = new URL(location);
      headers.set("location", u.pathname + u.search);
      rewritten++;
      return new Response(res.body, { status: res.status, headers });
    });
    const layout = `${tmp.path}/layout`;
    const img = await sampleImage(layout, "v1");
    const r = await cli(tmp.path, [
      "--repo",
      `${tmp.path}/r`,
      "push",
      `oci:${layout}:v1`,
      `docker://${proxy.host}/rel:v1`,
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(rewritten >= 8, `${rewritten} Locations rewritten`);
    assert.deepEqual(await rawManifest(`${reg.host}/rel:v1`), img.manifestBytes);
  },
});

Deno.test({
  name: "push: Basic auth (htpasswd) and Bearer tokens with the push,pull scope (and pull on a mount's source)",
  ignore: !haveTools("push auth", ...TOOLS, "htpasswd", "openssl"),
  async fn() {
    await using tmp = await tempDir();
    const layout = `${tmp.path}/layout`;
    const img = await sampleImage(layout, "v1");
    const home = tmp.path;
    {
      await Deno.writeTextFile(`${tmp.path}/htpasswd`, await run("htpasswd", "-Bbn", "ci", "ci-Secret:1"));
      await using reg = await startRegistry({ auth: { htpasswd: { realm: "t", path: `${tmp.path}/htpasswd` } } });
      const args = ["--repo", `${tmp.path}/r`, "push", `oci:${layout}:v1`, `docker://${reg.host}/private/app:v1`];
      const anon = await cli(home, args);
      assert.equal(anon.code, 1);
      assert.match(anon.stderr, /requires authentication: pass --creds/);
      const wrong = await cli(home, [...args, "--creds", "ci:nope"]);
      assert.equal(wrong.code, 1);
      assert.doesNotMatch(wrong.stderr, /nope/);
      const ok = await cli(home, [...args, "--creds", "ci:ci-Secret:1"]);
      assert.equal(ok.code, 0, ok.stderr);
      await copyFromRegistry(`docker://${reg.host}/private/app:v1`, `oci:${tmp.path}/basic-copy:v1`, {
        creds: "ci:ci-Secret:1",
      });
    }
    await using issuer = await startTokenIssuer(tmp.path, { users: { ci: "ci-Secret-2" } });
    await using reg = await startRegistry({ auth: issuer.registryAuth() });
    const push = (dest: string, ...extra: string[]) =>
      cli(home, [
        "--repo",
        `${tmp.path}/r`,
        "--json",
        "push",
        `oci:${layout}:v1`,
        `docker://${reg.host}/${dest}`,
        "--creds",
        "ci:ci-Secret-2",
        ...extra,
      ]);
    const first = await push("team/app:v1");
    assert.equal(first.code, 0, first.stderr);
    assert.deepEqual(
      issuer.requests.map((q) => q.scopes),
      [["repository:team/app:pull,push"]],
      "one token for the whole push",
    );
    issuer.requests.length = 0;
    const mounted = await push("team/copy:v1", "--mount-from", "team/app");
    assert.equal(mounted.code, 0, mounted.stderr);
    assert.deepEqual(
      JSON.parse(mounted.stdout).blobs.map((b: { outcome: string }) => b.outcome),
      Array(4).fill("mounted"),
    );
    assert.deepEqual(
      issuer.requests.map((q) => q.scopes),
      [["repository:team/copy:pull,push"], ["repository:team/copy:pull,push", "repository:team/app:pull"]],
    );
    assert.deepEqual(await rawManifestWithCreds(reg.host, "team/copy:v1", "ci:ci-Secret-2"), img.manifestBytes);
  },
});

/** The raw manifest of a private image. */
async function rawManifestWithCreds(host: string, ref: string, creds: string): Promise<Uint8Array> {
  const out = await new Deno.Command("skopeo", {
    args: ["inspect", "--raw", "--tls-verify=false", "--creds", creds, `docker://${host}/${ref}`],
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) throw new Error(dec.decode(out.stderr));
  return out.stdout;
}

Deno.test({
  name: "push failures: one clear line, repository unchanged",
  ignore: !haveTools("push failures", ...TOOLS),
  async fn() {
    await using tmp = await tempDir();
    await using reg = await startRegistry();
    const layout = `${tmp.path}/layout`;
    await sampleImage(layout, "v1");
    const repo = `${tmp.path}/repo`;
    assert.equal((await cli(tmp.path, ["--repo", repo, "pull", `oci:${layout}:v1`, "app"])).code, 0);
    const env = { HOME: tmp.path, DELTASHIP_RETRY_BASE_MS: "5" };
    await expectCleanFailure(repo, ["push", "nope", `docker://${reg.host}/x:v1`], /no image tagged "nope"/, env);
    await expectCleanFailure(repo, ["push", `oci:${layout}:v9`, `docker://${reg.host}/x:v1`], /v9/, env);
    await expectCleanFailure(
      repo,
      ["push", "app", "docker://127.0.0.1:1/x:v1"],
      /^deltaship: docker:\/\/127\.0\.0\.1:1\/x:v1: layer \d\/3 \(diff_id sha256:\w+\): POST http:\/\/127\.0\.0\.1:1\/v2\/x\/blobs\/uploads\/ failed \(5 tries\)/,
      env,
    );
    await expectCleanFailure(
      repo,
      ["push", `docker://${reg.host}/x:v1`, `docker://${reg.host}/y:v1`],
      /pull it, then push it/,
      env,
    );
    for (
      const [args, message] of [
        [["app", `docker://${reg.host}/x@sha256:${"0".repeat(64)}`], /name a tag, not a digest/],
        [["app", `oci:${tmp.path}/out`], /the destination must be docker:\/\//],
        [["app", `docker://${reg.host}/x:v1`, "--max-uploads", "0"], /--max-uploads must be an integer from 1 to 64/],
        [["app", `docker://${reg.host}/x:v1`, "--compression", "lz4"], /--compression must be gzip, zstd, .* or none/],
      ] as const
    ) {
      const r = await runCli(["--repo", repo, "push", ...args], env);
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, message);
      assert.equal(r.stderr.trim().split("\n").length, 1);
    }
  },
});
