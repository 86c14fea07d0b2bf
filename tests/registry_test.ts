/**
 * Pulling from a real registry (Debian's docker-registry, the CNCF distribution
 * registry) started per test on 127.0.0.1: by tag, by digest, from a
 * multi-platform index, with Basic auth and with Bearer tokens from an issuer
 * the registry trusts, and with a bounded number of downloads in flight.
 */
import assert from "node:assert/strict";
import { sha256 } from "../src/util/digest.ts";
import { type CliResult, deltashipProcess, runCli, tempDir } from "./helpers/cli.ts";
import { makeServerCertificate } from "./helpers/certs.ts";
import { expectCleanFailure } from "./helpers/failure.ts";
import { isBlobGet, startOverlapProxy, startProxy } from "./helpers/fault_proxy.ts";
import { haveTools, run } from "./helpers/interop.ts";
import { sampleTar, writeImage, writeIndex, type WrittenImage } from "./helpers/oci.ts";
import { freePort, pushImage, rawManifest, type Registry, startRegistry } from "./helpers/registry.ts";
import { buildTar } from "./helpers/tar.ts";
import { startTokenIssuer } from "./helpers/token_issuer.ts";
import { noise } from "./helpers/data.ts";

const TOOLS = ["docker-registry", "skopeo"];

/** Runs the CLI against `repo` with an isolated HOME and fast retries. */
function cli(home: string, repo: string, args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  return runCli(["--repo", repo, ...args], { HOME: home, DELTASHIP_RETRY_BASE_MS: "5", ...env });
}

/** Checks that every layer of `img` rebuilds byte for byte, and fsck is clean. */
async function assertStored(home: string, repo: string, img: WrittenImage): Promise<void> {
  for (let i = 0; i < img.diffIds.length; i++) {
    const layer = await cli(home, repo, ["layer", img.diffIds[i]]);
    assert.equal(layer.code, 0, layer.stderr);
    assert.equal(sha256(layer.stdoutBytes), img.diffIds[i]);
    assert.deepEqual(layer.stdoutBytes, img.tars[i]);
  }
  const fsck = await cli(home, repo, ["fsck"]);
  assert.equal(fsck.code, 0, fsck.stdout + fsck.stderr);
}

/** Random bytes that do not compress, so blobs are big enough to be cut midway. */
Deno.test({
  name: "registry: pull by tag and by digest keeps manifest, config and layers exact (OCI and Docker media types)",
  ignore: !haveTools("registry pull", ...TOOLS),
  async fn() {
    await using tmp = await tempDir();
    await using reg = await startRegistry();
    const home = tmp.path;
    const layout = `${tmp.path}/layout`;
    const img = await writeImage(layout, {
      tag: "v1",
      layers: [
        { tar: sampleTar("a") },
        { tar: sampleTar("b"), compression: "zstd" },
        { tar: buildTar([{ path: "data.bin", content: noise(300_000, 1) }]), compression: "none" },
      ],
    });
    const docker = await writeImage(layout, { tag: "d1", layers: [{ tar: sampleTar("d") }] });
    await pushImage(`oci:${layout}:v1`, `docker://${reg.host}/team/app:v1`);
    await pushImage(`oci:${layout}:d1`, `docker://${reg.host}/team/app:d1`, { format: "v2s2" });
    const dockerManifest = await rawManifest(`${reg.host}/team/app:d1`);

    // skopeo compresses the uncompressed layer on its way into the registry: compare with what the registry holds.
    const pushed = await rawManifest(`${reg.host}/team/app:v1`);
    const manifest = sha256(pushed);

    const repo = `${tmp.path}/repo`;
    const r = await cli(home, repo, ["--json", "pull", `docker://${reg.host}/team/app:v1`]);
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout);
    assert.equal(out.manifest, manifest);
    assert.equal(out.config, img.config);
    assert.equal(out.name, "v1");
    assert.equal(out.layersFetched, 3);
    const sizes = JSON.parse(new TextDecoder().decode(pushed)).layers.map((l: { size: number }) => l.size);
    assert.equal(out.bytesFetched, sizes.reduce((a: number, b: number) => a + b, 0));
    assert.deepEqual((await cli(home, repo, ["inspect", "v1", "--manifest"])).stdoutBytes, pushed);
    assert.deepEqual((await cli(home, repo, ["inspect", "v1", "--config"])).stdoutBytes, img.configBytes);
    await assertStored(home, repo, img);

    const again = await cli(home, repo, ["--json", "pull", `docker://${reg.host}/team/app:v1`, "again"]);
    assert.equal(JSON.parse(again.stdout).alreadyPresent, true);

    const byDigest = `${tmp.path}/by-digest`;
    const d = await cli(home, byDigest, ["--json", "pull", `docker://${reg.host}/team/app@${manifest}`]);
    assert.equal(d.code, 0, d.stderr);
    assert.equal(JSON.parse(d.stdout).manifest, manifest);
    assert.equal(JSON.parse(d.stdout).name, undefined);
    await assertStored(home, byDigest, img);

    const dr = await cli(home, repo, ["--json", "pull", `docker://${reg.host}/team/app:d1`]);
    assert.equal(dr.code, 0, dr.stderr);
    assert.equal(JSON.parse(dr.stdout).manifest, sha256(dockerManifest));
    assert.equal(JSON.parse(dr.stdout).config, docker.config);
    assert.deepEqual((await cli(home, repo, ["inspect", "d1", "--manifest"])).stdoutBytes, dockerManifest);
    const inspect = JSON.parse((await cli(home, repo, ["inspect", "d1"])).stdout);
    assert.equal(inspect.mediaType, "application/vnd.docker.distribution.manifest.v2+json");
    await assertStored(home, repo, docker);
  },
});

Deno.test({
  name: "registry: multi-platform index pushed with skopeo --all: the platform asked for, by tag and by index digest",
  ignore: !haveTools("registry index", ...TOOLS),
  async fn() {
    await using tmp = await tempDir();
    await using reg = await startRegistry();
    const home = tmp.path;
    const layout = `${tmp.path}/layout`;
    const amd = await writeImage(layout, {
      layers: [{ tar: sampleTar("amd") }],
      platform: { os: "linux", architecture: "amd64" },
      noIndexEntry: true,
    });
    const arm = await writeImage(layout, {
      layers: [{ tar: sampleTar("arm") }, { tar: sampleTar("arm2") }],
      platform: { os: "linux", architecture: "arm64", variant: "v8" },
      noIndexEntry: true,
    });
    const index = await writeIndex(layout, "multi", [
      { image: amd, platform: { os: "linux", architecture: "amd64" } },
      { image: arm, platform: { os: "linux", architecture: "arm64", variant: "v8" } },
    ]);
    await pushImage(`oci:${layout}:multi`, `docker://${reg.host}/multi:v2`, { all: true });

    const repo = `${tmp.path}/repo`;
    const a = await cli(home, repo, [
      "--json",
      "pull",
      "--platform",
      "linux/arm64/v8",
      `docker://${reg.host}/multi:v2`,
    ]);
    assert.equal(a.code, 0, a.stderr);
    assert.equal(JSON.parse(a.stdout).manifest, arm.manifest);
    assert.equal(JSON.parse(a.stdout).config, arm.config);
    await assertStored(home, repo, arm);

    const b = await cli(home, repo, [
      "--json",
      "pull",
      "--platform",
      "linux/amd64",
      `docker://${reg.host}/multi@${index}`,
      "amd",
    ]);
    assert.equal(b.code, 0, b.stderr);
    assert.equal(JSON.parse(b.stdout).manifest, amd.manifest);
    await assertStored(home, repo, amd);

    await expectCleanFailure(
      repo,
      ["pull", "--platform", "linux/s390x", `docker://${reg.host}/multi:v2`],
      /linux\/s390x/,
      { HOME: home },
    );
  },
});

Deno.test({
  name: "registry: missing images, closed ports and wrong TLS settings fail in one clear line",
  ignore: !haveTools("registry errors", ...TOOLS),
  async fn() {
    await using tmp = await tempDir();
    await using reg = await startRegistry();
    const repo = `${tmp.path}/repo`;
    const env = { HOME: tmp.path, DELTASHIP_RETRY_BASE_MS: "5" };
    await expectCleanFailure(
      repo,
      ["pull", `docker://${reg.host}/nothing:v1`],
      new RegExp(
        `docker://${reg.host}/nothing:v1: manifest: not found: GET http://${reg.host}/v2/nothing/manifests/v1: HTTP 404`,
      ),
      env,
    );
    const closed = freePort();
    await expectCleanFailure(
      repo,
      ["pull", `docker://127.0.0.1:${closed}/app:v1`],
      new RegExp(`GET http://127\\.0\\.0\\.1:${closed}/v2/app/manifests/v1 failed \\(5 tries\\)`),
      env,
    );
    await expectCleanFailure(
      repo,
      ["pull", "--tls-verify=true", `docker://${reg.host}/app:v1`],
      /GET https:\/\/127\.0\.0\.1:\d+\/v2\/app\/manifests\/v1 failed.*pass --tls-verify=false/,
      env,
    );
    const bad = await runCli(["--repo", repo, "pull", "docker://127.0.0.1:1/Bad:v1"], env);
    assert.equal(bad.code, 2);
    assert.match(
      bad.stderr,
      /invalid reference "docker:\/\/127\.0\.0\.1:1\/Bad:v1": repository name must be lowercase/,
    );
    for (
      const [args, msg] of [
        [["--tls-verify=maybe"], /--tls-verify must be true or false/],
        [["--max-downloads", "0"], /--max-downloads must be an integer from 1 to 64, got "0"/],
        [["--creds", "nocolon"], /--creds must be USER:PASS/],
      ] as const
    ) {
      const r = await runCli(["--repo", repo, "pull", ...args, `docker://${reg.host}/app:v1`], env);
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, msg);
    }
  },
});

Deno.test({
  name: "registry: HTTPS with a verified certificate (--tls-verify=true), and a clear error for an untrusted one",
  ignore: !haveTools("registry https", ...TOOLS, "openssl"),
  async fn() {
    await using tmp = await tempDir();
    const tls = await makeServerCertificate(tmp.path);
    await using reg = await startRegistry({ tls });
    const layout = `${tmp.path}/layout`;
    const img = await writeImage(layout, { tag: "v1", layers: [{ tar: sampleTar("tls") }] });
    await pushImage(`oci:${layout}:v1`, `docker://${reg.host}/secure:v1`);
    const repo = `${tmp.path}/repo`;
    // DENO_CERT is read when the runtime starts, so these run as child processes.
    const src = `docker://${reg.host}/secure:v1`;
    const ok = await deltashipProcess(["--repo", repo, "--json", "pull", "--tls-verify=true", src], {
      DENO_CERT: tls.ca,
      HOME: tmp.path,
    });
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(JSON.parse(ok.stdout).manifest, img.manifest);
    await assertStored(tmp.path, repo, img);
    const untrusted = await deltashipProcess(["--repo", `${tmp.path}/r2`, "pull", "--tls-verify=true", src], {
      HOME: tmp.path,
      DELTASHIP_RETRY_BASE_MS: "5",
    });
    assert.equal(untrusted.code, 1);
    assert.match(
      untrusted.stderr,
      new RegExp(
        `^deltaship: ${src}: manifest: GET https://${reg.host}/v2/secure/manifests/v1 failed.*invalid peer certificate: UnknownIssuer`,
      ),
    );
    assert.equal(untrusted.stderr.trim().split("\n").length, 1);
    assert.doesNotMatch(untrusted.stderr, /tries/, "a certificate error is not retried");
  },
});

Deno.test({
  name: "registry: Basic auth (htpasswd) with --creds and with auth files; wrong credentials fail without leaking them",
  ignore: !haveTools("registry basic auth", ...TOOLS, "htpasswd"),
  async fn() {
    await using tmp = await tempDir();
    const user = "deploy-user";
    const password = "Pa55-word:with-colon";
    await Deno.writeTextFile(`${tmp.path}/htpasswd`, await run("htpasswd", "-Bbn", user, password));
    await using reg = await startRegistry({
      auth: { htpasswd: { realm: "deltaship-test", path: `${tmp.path}/htpasswd` } },
    });
    const layout = `${tmp.path}/layout`;
    const img = await writeImage(layout, { tag: "v1", layers: [{ tar: sampleTar("basic") }] });
    await pushImage(`oci:${layout}:v1`, `docker://${reg.host}/private/app:v1`, { creds: `${user}:${password}` });
    const src = `docker://${reg.host}/private/app:v1`;
    const home = `${tmp.path}/home`;
    await Deno.mkdir(home);
    const env = { HOME: home, DELTASHIP_RETRY_BASE_MS: "5" };

    const failed = `${tmp.path}/failed`;
    await expectCleanFailure(failed, ["pull", src], /127\.0\.0\.1:\d+ requires authentication: pass --creds/, env);
    const wrong = await expectCleanFailure(
      failed,
      ["pull", "--creds", `${user}:not-the-password`, src],
      /authentication to 127\.0\.0\.1:\d+ failed with the credentials from --creds/,
      env,
    );
    assert.doesNotMatch(wrong.stderr, /not-the-password|deploy-user/);

    const r = await cli(home, `${tmp.path}/a`, ["--json", "pull", "--creds", `${user}:${password}`, src]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(JSON.parse(r.stdout).manifest, img.manifest);
    await assertStored(home, `${tmp.path}/a`, img);

    // From an auth file named by REGISTRY_AUTH_FILE; it is consulted before ~/.docker/config.json.
    const authFile = `${tmp.path}/auth.json`;
    await Deno.writeTextFile(
      authFile,
      JSON.stringify({ auths: { [reg.host]: { auth: btoa(`${user}:${password}`) } } }),
    );
    await Deno.mkdir(`${home}/.docker`);
    await Deno.writeTextFile(
      `${home}/.docker/config.json`,
      JSON.stringify({ auths: { [reg.host]: { auth: btoa(`${user}:stale-docker-password`) } } }),
    );
    const f = await cli(home, `${tmp.path}/b`, ["--json", "pull", src], { REGISTRY_AUTH_FILE: authFile });
    assert.equal(f.code, 0, f.stderr);
    assert.equal(JSON.parse(f.stdout).manifest, img.manifest);
    // Without REGISTRY_AUTH_FILE the stale docker entry is used, and the failure names its file.
    const stale = await expectCleanFailure(
      `${tmp.path}/c`,
      ["pull", src],
      new RegExp(`failed with the credentials from ${home}/\\.docker/config\\.json`),
      env,
    );
    assert.doesNotMatch(stale.stderr, /stale-docker-password/);
  },
});

Deno.test({
  name: "registry: Bearer tokens from a trusted issuer, anonymous and with credentials, cached per scope",
  ignore: !haveTools("registry token auth", ...TOOLS, "openssl"),
  async fn() {
    await using tmp = await tempDir();
    await using issuer = await startTokenIssuer(tmp.path, { users: { alice: "alice-Secret-1" }, publicRepos: ["pub"] });
    await using reg = await startRegistry({ auth: issuer.registryAuth() });
    const layout = `${tmp.path}/layout`;
    const img = await writeImage(layout, {
      tag: "v1",
      layers: [{ tar: sampleTar("t1") }, { tar: sampleTar("t2") }, { tar: sampleTar("t3") }],
    });
    await pushImage(`oci:${layout}:v1`, `docker://${reg.host}/private/app:v1`, { creds: "alice:alice-Secret-1" });
    await pushImage(`oci:${layout}:v1`, `docker://${reg.host}/pub:v1`, { creds: "alice:alice-Secret-1" });
    const home = tmp.path;

    issuer.requests.length = 0;
    const r = await cli(home, `${tmp.path}/a`, [
      "--json",
      "pull",
      "--creds",
      "alice:alice-Secret-1",
      `docker://${reg.host}/private/app:v1`,
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(JSON.parse(r.stdout).manifest, img.manifest);
    await assertStored(home, `${tmp.path}/a`, img);
    // one token for manifest, config and three blobs
    assert.deepEqual(issuer.requests.map((q) => [q.scopes, q.user, q.service]), [
      [["repository:private/app:pull"], "alice", issuer.service],
    ]);

    issuer.requests.length = 0;
    const anon = await cli(home, `${tmp.path}/b`, ["--json", "pull", `docker://${reg.host}/pub:v1`]);
    assert.equal(anon.code, 0, anon.stderr);
    assert.equal(JSON.parse(anon.stdout).manifest, img.manifest);
    assert.deepEqual(issuer.requests.map((q) => [q.scopes, q.user, q.account]), [
      [["repository:pub:pull"], undefined, null],
    ]);

    const env = { HOME: home, DELTASHIP_RETRY_BASE_MS: "5" };
    const wrong = await expectCleanFailure(
      `${tmp.path}/c`,
      ["pull", "--creds", "alice:WRONG-pass", `docker://${reg.host}/private/app:v1`],
      /authentication to 127\.0\.0\.1:\d+ failed with the credentials from --creds: check the user name and password/,
      env,
    );
    assert.doesNotMatch(wrong.stderr, /WRONG-pass|alice/);
    await expectCleanFailure(
      `${tmp.path}/c`,
      ["pull", `docker://${reg.host}/private/app:v1`],
      /private\/app:v1: manifest: 127\.0\.0\.1:\d+ requires authentication: pass --creds USER:PASS/,
      env,
    );

    // A token the registry refuses midway (here: a 401 injected once for a blob) is fetched again.
    let refused = false;
    await using proxy = startProxy(reg.url, async (req, { path, forward }) => {
      if (!refused && isBlobGet(req, path) && req.headers.has("authorization")) {
        refused = true;
        return new Response(null, {
          status: 401,
          headers: {
            "www-authenticate":
              `Bearer realm="${issuer.realm}",service="${issuer.service}",scope="repository:private/app:pull",error="invalid_token"`,
          },
        });
      }
      return await forward();
    });
    issuer.requests.length = 0;
    const again = await cli(home, `${tmp.path}/d`, [
      "--json",
      "pull",
      "--creds",
      "alice:alice-Secret-1",
      `docker://${proxy.host}/private/app:v1`,
    ]);
    assert.equal(again.code, 0, again.stderr);
    assert.ok(refused);
    assert.equal(issuer.requests.length, 2, JSON.stringify(issuer.requests));
    await assertStored(home, `${tmp.path}/d`, img);
  },
});

Deno.test({
  name: "registry: --max-downloads bounds blob bodies in flight, independently of --jobs",
  ignore: !haveTools("registry max downloads", ...TOOLS),
  async fn() {
    await using tmp = await tempDir();
    await using reg: Registry = await startRegistry();
    const layout = `${tmp.path}/layout`;
    const img = await writeImage(layout, {
      tag: "v1",
      layers: ["a", "b", "c", "d", "e"].map((s) => ({
        tar: buildTar([{ path: s, content: noise(200_000, s.charCodeAt(0)) }]),
      })),
    });
    await pushImage(`oci:${layout}:v1`, `docker://${reg.host}/wide:v1`);
    await using proxy = startOverlapProxy(reg.url, new Set(img.layers.map((l) => l.digest)));
    const src = `docker://${proxy.host}/wide:v1`;
    const one = await cli(tmp.path, `${tmp.path}/one`, ["--json", "-j", "4", "pull", "--max-downloads", "1", src]);
    assert.equal(one.code, 0, one.stderr);
    assert.equal(proxy.peak(), 1);
    await assertStored(tmp.path, `${tmp.path}/one`, img);

    proxy.reset();
    const two = await cli(tmp.path, `${tmp.path}/two`, ["--json", "-j", "4", "pull", src]);
    assert.equal(two.code, 0, two.stderr);
    assert.equal(proxy.peak(), 2, "default limit 2");
    await assertStored(tmp.path, `${tmp.path}/two`, img);

    proxy.reset();
    const three = await cli(tmp.path, `${tmp.path}/three`, ["--json", "-j", "4", "pull", "--max-downloads", "3", src]);
    assert.equal(three.code, 0, three.stderr);
    assert.equal(proxy.peak(), 3, "limit 3");

    // A download streams straight into its layer's import, so one job means one body at a time.
    proxy.reset();
    const inline = await cli(tmp.path, `${tmp.path}/inline`, [
      "--json",
      "-j",
      "1",
      "pull",
      "--max-downloads",
      "3",
      src,
    ]);
    assert.equal(inline.code, 0, inline.stderr);
    assert.equal(proxy.peak(), 1, "-j 1 processes (and so downloads) one layer at a time");
  },
});
