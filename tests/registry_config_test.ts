/**
 * Registries set up the way the containers tools set hosts up, against real
 * servers started here: `skopeo login` writing the auth file deltaship must
 * read, `deltaship login` writing the one skopeo reads, a docker-registry
 * with htpasswd auth and TLS (a private CA in certs.d, a self-signed
 * certificate, a client certificate), mirrors behind a registries.conf, and a
 * CONNECT proxy named by HTTPS_PROXY. System paths (/etc/containers,
 * /run/containers) are taken under DELTASHIP_SYSTEM_ROOT, never the host's.
 */
import assert from "node:assert/strict";
import { main } from "../src/cli/main.ts";
import { concat } from "../src/util/streams.ts";
import { type CliResult, deltashipProcess, tempDir } from "./helpers/cli.ts";
import { makeClientCertificate, makeSelfSignedCertificate, makeServerCertificate } from "./helpers/certs.ts";
import { startConnectProxy } from "./helpers/connect_proxy.ts";
import { expectCleanFailure } from "./helpers/failure.ts";
import { haveTools, run } from "./helpers/interop.ts";
import { sampleTar, writeImage, type WrittenImage } from "./helpers/oci.ts";
import { pushImage, type Registry, startRegistry } from "./helpers/registry.ts";

const TOOLS = ["docker-registry", "skopeo"];
const USER = "deploy";
const PASSWORD = "S3cret-pass:word";

/** An isolated environment: HOME and the system root under `dir`, fast retries. */
function envIn(dir: string, extra: Record<string, string> = {}): Record<string, string> {
  return { HOME: `${dir}/home`, DELTASHIP_SYSTEM_ROOT: `${dir}/root`, DELTASHIP_RETRY_BASE_MS: "5", ...extra };
}

/** Runs the CLI in-process with exactly `env` (and `stdin`, when given). */
async function cli(args: string[], env: Record<string, string>, stdin?: string): Promise<CliResult> {
  const out: Uint8Array[] = [];
  const err: Uint8Array[] = [];
  const code = await main(args, {
    stdout: { isTerminal: false, write: (b) => (out.push(b.slice()), Promise.resolve()) },
    stderr: { isTerminal: false, write: (b) => (err.push(b.slice()), Promise.resolve()) },
    env,
    ...(stdin !== undefined ? { stdin: new Blob([stdin]).stream() } : {}),
  });
  const dec = new TextDecoder();
  const stdoutBytes = concat(out);
  return { code, stdout: dec.decode(stdoutBytes), stdoutBytes, stderr: dec.decode(concat(err)) };
}

/** Pulls `src` into a fresh repository under `dir`; returns pull's JSON. */
async function pullOk(
  dir: string,
  name: string,
  src: string,
  env: Record<string, string>,
  ...extra: string[]
  // deno-lint-ignore no-explicit-any
): Promise<any> {
  const r = await cli(["--repo", `${dir}/${name}`, "--json", "pull", ...extra, src], env);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout);
}

/** A registry asking for htpasswd Basic auth, with one image pushed as `app:v1`. */
async function privateRegistry(dir: string): Promise<{ reg: Registry; img: WrittenImage }> {
  await Deno.writeTextFile(`${dir}/htpasswd`, await run("htpasswd", "-Bbn", USER, PASSWORD));
  const reg = await startRegistry({ auth: { htpasswd: { realm: "deltaship-test", path: `${dir}/htpasswd` } } });
  const img = await writeImage(`${dir}/layout`, { tag: "v1", layers: [{ tar: sampleTar("private") }] });
  await pushImage(`oci:${dir}/layout:v1`, `docker://${reg.host}/team/app:v1`, { creds: `${USER}:${PASSWORD}` });
  return { reg, img };
}

Deno.test({
  name: "auth files: what skopeo login writes is read (XDG_RUNTIME_DIR, else /run/containers/UID; --authfile)",
  ignore: !haveTools("registry auth files", ...TOOLS, "htpasswd"),
  async fn() {
    await using tmp = await tempDir();
    const t = tmp.path;
    const { reg, img } = await privateRegistry(t);
    await using _ = reg;
    const src = `docker://${reg.host}/team/app:v1`;
    const login = (...args: string[]) =>
      run("skopeo", "login", "--tls-verify=false", "-u", USER, "-p", PASSWORD, ...args, reg.host);

    // As root without XDG_RUNTIME_DIR (a systemd service): /run/containers/0/auth.json.
    const perUid = `${t}/root/run/containers/${Deno.uid()}/auth.json`;
    await Deno.mkdir(perUid.slice(0, perUid.lastIndexOf("/")), { recursive: true });
    await login("--authfile", perUid);
    const env = envIn(t);
    assert.equal((await pullOk(t, "a", src, env)).manifest, img.manifest);

    // With XDG_RUNTIME_DIR, skopeo login's default file there.
    await Deno.mkdir(`${t}/xdg`);
    const out = await new Deno.Command("skopeo", {
      args: ["login", "--tls-verify=false", "-u", USER, "-p", PASSWORD, reg.host],
      env: { XDG_RUNTIME_DIR: `${t}/xdg`, REGISTRY_AUTH_FILE: "" },
    }).output();
    assert.ok(out.success, new TextDecoder().decode(out.stderr));
    await Deno.remove(perUid);
    assert.equal((await pullOk(t, "b", src, envIn(t, { XDG_RUNTIME_DIR: `${t}/xdg` }))).manifest, img.manifest);

    // --authfile is the only file read, even when another has the registry.
    await Deno.writeTextFile(`${t}/empty.json`, '{"auths": {}}');
    const none = await expectCleanFailure(
      `${t}/c`,
      ["pull", "--authfile", `${t}/empty.json`, src],
      /requires authentication: pass --creds USER:PASS, or log in with deltaship login 127\.0\.0\.1:\d+/,
      envIn(t, { XDG_RUNTIME_DIR: `${t}/xdg` }),
    );
    assert.equal(none.stderr.trim().split("\n").length, 1);
    assert.equal(
      (await pullOk(t, "d", src, env, "--authfile", `${t}/xdg/containers/auth.json`)).manifest,
      img.manifest,
    );

    // A credential helper is named, never run.
    await Deno.writeTextFile(
      `${t}/helper.json`,
      JSON.stringify({ auths: {}, credHelpers: { [reg.host]: "pass" } }),
    );
    const helped = await expectCleanFailure(
      `${t}/e`,
      ["pull", "--authfile", `${t}/helper.json`, src],
      /kept by the credential helper docker-credential-pass \(credHelpers in .*helper\.json\), which deltaship cannot run/,
      env,
    );
    assert.doesNotMatch(helped.stderr + helped.stdout, new RegExp(PASSWORD));
  },
});

Deno.test({
  name:
    "login: checked against the registry, written as skopeo login writes it (0600, atomically), read by skopeo; logout",
  ignore: !haveTools("registry login", ...TOOLS, "htpasswd"),
  async fn() {
    await using tmp = await tempDir();
    const t = tmp.path;
    const { reg, img } = await privateRegistry(t);
    await using _ = reg;
    const env = envIn(t, { XDG_RUNTIME_DIR: `${t}/xdg` });
    const ours = `${t}/xdg/containers/auth.json`;

    const wrong = await cli(["login", "-u", USER, "--password-stdin", reg.host], env, "not-it\n");
    assert.equal(wrong.code, 1);
    assert.match(wrong.stderr, /authentication to 127\.0\.0\.1:\d+ failed with the credentials from the user name/);
    await assert.rejects(Deno.stat(ours), Deno.errors.NotFound, "nothing is written for refused credentials");

    const ok = await cli(["login", "-u", USER, "--password-stdin", reg.host], env, `${PASSWORD}\n`);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, /^Login Succeeded!/);
    assert.doesNotMatch(ok.stdout + ok.stderr, new RegExp(PASSWORD));
    assert.equal((await Deno.stat(ours)).mode! & 0o777, 0o600);
    assert.deepEqual((await Array.fromAsync(Deno.readDir(`${t}/xdg/containers`))).map((e) => e.name), ["auth.json"]);

    // Byte for byte what skopeo login writes for the same credentials.
    await run(
      "skopeo",
      "login",
      "--tls-verify=false",
      "--authfile",
      `${t}/skopeo.json`,
      "-u",
      USER,
      "-p",
      PASSWORD,
      reg.host,
    );
    assert.equal(await Deno.readTextFile(ours), await Deno.readTextFile(`${t}/skopeo.json`));
    // skopeo reads it, and so does pull.
    await run(
      "skopeo",
      "inspect",
      "--raw",
      "--tls-verify=false",
      "--authfile",
      ours,
      `docker://${reg.host}/team/app:v1`,
    );
    assert.equal((await pullOk(t, "a", `docker://${reg.host}/team/app:v1`, env)).manifest, img.manifest);

    // Another registry's entry is kept when logging in again; logout removes one entry.
    await Deno.writeTextFile(ours, JSON.stringify({ auths: { "other.example.com": { auth: btoa("o:p") } } }));
    assert.equal((await cli(["login", "-u", USER, "-p", PASSWORD, reg.host], env)).code, 0);
    assert.deepEqual(Object.keys(JSON.parse(await Deno.readTextFile(ours)).auths), [reg.host, "other.example.com"]);
    const out = await cli(["logout", reg.host], env);
    assert.equal(out.code, 0, out.stderr);
    assert.deepEqual(Object.keys(JSON.parse(await Deno.readTextFile(ours)).auths), ["other.example.com"]);
    const again = await cli(["logout", reg.host], env);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /not logged in to 127\.0\.0\.1:\d+: .*auth\.json has no entry for it/);
    const usage = await cli(["login", reg.host], env);
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /login: pass --username USER/);
  },
});

Deno.test({
  name: "TLS: a private CA in certs.d needs no flag; a self-signed certificate needs --tls-verify=false and says so; " +
    "--tls-verify=false reaches plain HTTP; a client certificate from --cert-dir",
  ignore: !haveTools("registry TLS", ...TOOLS, "openssl"),
  async fn() {
    await using tmp = await tempDir();
    const t = tmp.path;
    await Deno.mkdir(`${t}/ca`);
    const ca = await makeServerCertificate(`${t}/ca`);
    const img = await writeImage(`${t}/layout`, { tag: "v1", layers: [{ tar: sampleTar("tls") }] });
    const env = envIn(t);

    // A private CA, trusted through certs.d for HOST:PORT, with no flag.
    await using caReg = await startRegistry({ tls: ca });
    await pushImage(`oci:${t}/layout:v1`, `docker://${caReg.host}/app:v1`);
    const caSrc = `docker://${caReg.host}/app:v1`;
    const untrusted = await expectCleanFailure(
      `${t}/r0`,
      ["pull", "--tls-verify=true", caSrc],
      new RegExp(
        `UnknownIssuer; 127\\.0\\.0\\.1:\\d+'s certificate is not signed by a CA trusted here: put the CA certificate ` +
          `in /etc/containers/certs\\.d/${caReg.host}/ca\\.crt \\(or a directory passed as --cert-dir\\), or pass --tls-verify=false`,
      ),
      env,
    );
    assert.doesNotMatch(untrusted.stderr, /tries/);
    const certsD = `${t}/root/etc/containers/certs.d/${caReg.host}`;
    await Deno.mkdir(certsD, { recursive: true });
    await Deno.copyFile(ca.ca, `${certsD}/ca.crt`);
    assert.equal((await pullOk(t, "r1", caSrc, env)).manifest, img.manifest);

    // A self-signed certificate (CA:TRUE): rustls refuses it even as a trusted CA, and the error says what to do.
    await Deno.mkdir(`${t}/self`);
    const self = await makeSelfSignedCertificate(`${t}/self`);
    await using selfReg = await startRegistry({ tls: { ...self, ca: self.certificate } });
    await pushImage(`oci:${t}/layout:v1`, `docker://${selfReg.host}/app:v1`);
    const selfSrc = `docker://${selfReg.host}/app:v1`;
    const selfD = `${t}/root/etc/containers/certs.d/${selfReg.host}`;
    await Deno.mkdir(selfD, { recursive: true });
    await Deno.copyFile(self.certificate, `${selfD}/self.crt`);
    const refused = await expectCleanFailure(
      `${t}/r2`,
      ["pull", selfSrc],
      /CaUsedAsEndEntity.*certificate is a CA certificate used as its own \(as openssl req -x509 makes them\), which Deno's TLS library \(rustls\) refuses even when it is trusted: issue the registry a certificate signed by a CA .* or pass --tls-verify=false/,
      env,
    );
    assert.doesNotMatch(refused.stderr, /plain HTTP/);
    assert.equal((await pullOk(t, "r3", selfSrc, env, "--tls-verify=false")).manifest, img.manifest);
    // registries.conf's insecure = true does the same without the flag.
    await Deno.writeTextFile(`${t}/insecure.conf`, `[[registry]]\nlocation = "${selfReg.host}"\ninsecure = true\n`);
    const viaConf = await pullOk(t, "r3b", selfSrc, env, "--registries-conf", `${t}/insecure.conf`);
    assert.equal(viaConf.manifest, img.manifest);

    // --tls-verify=false on a registry that speaks only plain HTTP: HTTPS first, then HTTP.
    await using plainReg = await startRegistry();
    await pushImage(`oci:${t}/layout:v1`, `docker://${plainReg.host}/app:v1`);
    const plain = await pullOk(t, "r4", `docker://${plainReg.host}/app:v1`, env, "--tls-verify=false");
    assert.equal(plain.manifest, img.manifest);

    // A registry that wants a client certificate: NAME.cert and NAME.key in --cert-dir.
    const client = await makeClientCertificate(`${t}/ca`);
    await using mtls = await startRegistry({ tls: { ...ca, clientCa: ca.ca } });
    const certDir = `${t}/cert-dir`;
    await Deno.mkdir(certDir);
    await Deno.copyFile(ca.ca, `${certDir}/ca.crt`);
    await Deno.copyFile(client.certificate, `${certDir}/client.cert`);
    await Deno.copyFile(client.key, `${certDir}/client.key`);
    await run(
      "skopeo",
      "--insecure-policy",
      "copy",
      "--quiet",
      "--dest-cert-dir",
      certDir,
      `oci:${t}/layout:v1`,
      `docker://${mtls.host}/app:v1`,
    );
    const mtlsSrc = `docker://${mtls.host}/app:v1`;
    assert.equal((await pullOk(t, "r5", mtlsSrc, env, "--cert-dir", certDir)).manifest, img.manifest);
    await Deno.remove(`${certDir}/client.key`);
    await expectCleanFailure(
      `${t}/r6`,
      ["pull", "--cert-dir", certDir, mtlsSrc],
      /client certificate .*client\.cert has no key client\.key beside it/,
      env,
    );
  },
});

/** The app file of version `v`: noise with `v` small regions changed, so a delta between versions is small. */
function appFile(v: number): Uint8Array {
  const bytes = new Uint8Array(300_000);
  let x = 12345;
  for (let i = 0; i < bytes.length; i++) bytes[i] = (x = (x * 1103515245 + 12345) >>> 0) >>> 24;
  for (let r = 0; r < v; r++) bytes.fill(r + 1, 40_000 + r * 90_000, 40_000 + r * 90_000 + 64);
  return bytes;
}

Deno.test({
  name: "registries.conf: mirrors tried before the primary, pull-from-mirror, prefix to location, blocked; " +
    "deltas looked up at the mirror that serves the image, and the output says which",
  ignore: !haveTools("registries.conf mirrors", ...TOOLS),
  async fn() {
    await using tmp = await tempDir();
    const t = tmp.path;
    await using primary = await startRegistry();
    await using mirror = await startRegistry();
    const { buildTar } = await import("./helpers/tar.ts");
    const images: WrittenImage[] = [];
    for (const v of [1, 2]) {
      images.push(
        await writeImage(`${t}/layout`, {
          tag: `v${v}`,
          layers: [{ tar: sampleTar("base") }, { tar: buildTar([{ path: "opt/app.bin", content: appFile(v) }]) }],
        }),
      );
      await pushImage(`oci:${t}/layout:v${v}`, `docker://${primary.host}/team/app:v${v}`);
      await pushImage(`oci:${t}/layout:v${v}`, `docker://${mirror.host}/cache/team/app:v${v}`);
    }
    await pushImage(`oci:${t}/layout:v1`, `docker://${primary.host}/team/app:primary-only`);
    // CI publishes the delta v1 -> v2 to the mirror only.
    const ci = await cli([
      "--repo",
      `${t}/ci`,
      "create-delta",
      `docker://${mirror.host}/cache/team/app:v1`,
      `docker://${mirror.host}/cache/team/app:v2`,
      `docker://${mirror.host}/cache/team/app`,
    ], envIn(t));
    assert.equal(ci.code, 0, ci.stderr);

    const conf = `${t}/registries.conf`;
    await Deno.writeTextFile(
      conf,
      `[[registry]]
prefix = "registry.example.com/team"
location = "${primary.host}/team"

[[registry.mirror]]
location = "${mirror.host}/cache/team"

[[registry]]
location = "blocked.example.com"
blocked = true
`,
    );
    const env = envIn(t, { CONTAINERS_REGISTRIES_CONF: conf });
    const repo = `${t}/host`;
    const text = await cli(["--repo", repo, "pull", "docker://registry.example.com/team/app:v1"], env);
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, new RegExp(`^from mirror docker://${mirror.host}/cache/team/app:v1\n`));
    const v2 = await cli(["--repo", repo, "--json", "pull", "docker://registry.example.com/team/app:v2"], env);
    assert.equal(v2.code, 0, v2.stderr);
    const out = JSON.parse(v2.stdout);
    assert.equal(out.manifest, images[1].manifest);
    assert.deepEqual(out.servedBy, { reference: `${mirror.host}/cache/team/app:v2`, mirror: true, asNamed: false });
    assert.equal(out.discovery.way, "delta", "the delta published on the mirror was found there");

    // Not on the mirror: the primary location, the name rewritten from the prefix.
    const fallback = await pullOk(t, "b", "docker://registry.example.com/team/app:primary-only", env);
    assert.deepEqual(fallback.servedBy, {
      reference: `${primary.host}/team/app:primary-only`,
      mirror: false,
      asNamed: false,
    });

    // A mirror for digests only is skipped by a pull by tag.
    await Deno.writeTextFile(
      conf,
      (await Deno.readTextFile(conf)).replace(`/cache/team"`, `/cache/team"\npull-from-mirror = "digest-only"`),
    );
    const byTag = await pullOk(t, "c", "docker://registry.example.com/team/app:v1", env);
    assert.equal(byTag.servedBy.mirror, false);
    const byDigest = await pullOk(t, "d", `docker://registry.example.com/team/app@${images[0].manifest}`, env);
    assert.equal(byDigest.servedBy.mirror, true);

    await expectCleanFailure(
      `${t}/e`,
      ["pull", "docker://blocked.example.com/app:v1"],
      /registry blocked\.example\.com is blocked in .*registries\.conf \(blocked = true\)/,
      env,
    );
    // Everywhere missing: the primary's error, with what each mirror answered.
    const missing = `sha256:${"0".repeat(64)}`;
    await expectCleanFailure(
      `${t}/e`,
      ["pull", `docker://registry.example.com/team/none@${missing}`],
      new RegExp(
        `manifest: not found: GET http://${primary.host}/v2/team/none/manifests/${missing}: HTTP 404.*` +
          `\\(mirrors also failed: ${mirror.host}/cache/team/none@${missing}: .*HTTP 404`,
      ),
      env,
    );
  },
});

Deno.test({
  name: "proxies: HTTPS_PROXY tunnels registry requests through a CONNECT proxy; NO_PROXY bypasses it",
  ignore: !haveTools("registry proxy", ...TOOLS, "openssl"),
  async fn() {
    await using tmp = await tempDir();
    const t = tmp.path;
    await Deno.mkdir(`${t}/ca`);
    const ca = await makeServerCertificate(`${t}/ca`);
    await using reg = await startRegistry({ tls: ca });
    const img = await writeImage(`${t}/layout`, { tag: "v1", layers: [{ tar: sampleTar("proxied") }] });
    await pushImage(`oci:${t}/layout:v1`, `docker://${reg.host}/app:v1`);
    const certsD = `${t}/root/etc/containers/certs.d/${reg.host}`;
    await Deno.mkdir(certsD, { recursive: true });
    await Deno.copyFile(ca.ca, `${certsD}/ca.crt`);
    await using proxy = startConnectProxy();
    // The runtime reads the proxy variables from the process environment: a child process.
    const denoDir = Deno.env.get("DENO_DIR") ?? `${Deno.env.get("HOME")}/.cache/deno`;
    const env = envIn(t, { DENO_DIR: denoDir, DENO_NO_UPDATE_CHECK: "1", HTTPS_PROXY: proxy.url, NO_PROXY: "" });
    const toRegistry = () => proxy.tunnels.filter((h) => h === reg.host).length;
    const src = `docker://${reg.host}/app:v1`;
    const through = await deltashipProcess(["--repo", `${t}/a`, "--json", "pull", src], env);
    assert.equal(through.code, 0, through.stderr);
    assert.equal(JSON.parse(through.stdout).manifest, img.manifest);
    assert.ok(toRegistry() >= 1, proxy.tunnels.join(" "));

    proxy.tunnels.length = 0;
    const direct = await deltashipProcess(["--repo", `${t}/b`, "--json", "pull", src], {
      ...env,
      NO_PROXY: "127.0.0.1",
    });
    assert.equal(direct.code, 0, direct.stderr);
    assert.equal(toRegistry(), 0, proxy.tunnels.join(" "));
  },
});

Deno.test({
  name: "create-delta: --src-creds for OLD and NEW, --dest-creds for OUT, --creds for both",
  ignore: !haveTools("create-delta creds", ...TOOLS, "htpasswd"),
  async fn() {
    await using tmp = await tempDir();
    const t = tmp.path;
    const registryFor = async (name: string, user: string, password: string) => {
      await Deno.writeTextFile(`${t}/${name}.htpasswd`, await run("htpasswd", "-Bbn", user, password));
      return await startRegistry({ auth: { htpasswd: { realm: name, path: `${t}/${name}.htpasswd` } } });
    };
    await using src = await registryFor("src", "reader", "read-Pass1");
    await using dst = await registryFor("dst", "writer", "write-Pass2");
    const { buildTar } = await import("./helpers/tar.ts");
    for (const v of [1, 2]) {
      await writeImage(`${t}/layout`, {
        tag: `v${v}`,
        layers: [{ tar: buildTar([{ path: "opt/app.bin", content: appFile(v) }]) }],
      });
      await pushImage(`oci:${t}/layout:v${v}`, `docker://${src.host}/app:v${v}`, { creds: "reader:read-Pass1" });
    }
    const env = envIn(t);
    const args = [`docker://${src.host}/app:v1`, `docker://${src.host}/app:v2`, `docker://${dst.host}/app`];
    const both = await cli(
      [
        "--repo",
        `${t}/ci`,
        "create-delta",
        "--src-creds",
        "reader:read-Pass1",
        "--dest-creds",
        "writer:write-Pass2",
        ...args,
      ],
      env,
    );
    assert.equal(both.code, 0, both.stderr);
    assert.match(both.stdout, new RegExp(`pushed docker://${dst.host}/app:v1-to-v2;`));
    // --creds alone goes to both registries: the destination refuses the reader, and says which option it was.
    const one = await cli(["--repo", `${t}/ci2`, "create-delta", "--creds", "reader:read-Pass1", ...args], env);
    assert.equal(one.code, 1);
    assert.match(one.stderr, /authentication to 127\.0\.0\.1:\d+ failed with the credentials from --creds/);
    const dest = await cli(
      [
        "--repo",
        `${t}/ci3`,
        "create-delta",
        "--creds",
        "writer:write-Pass2",
        "--src-creds",
        "reader:read-Pass1",
        ...args,
      ],
      env,
    );
    assert.equal(dest.code, 0, dest.stderr);
    const wrong = await cli(
      ["--repo", `${t}/ci4`, "create-delta", "--creds", "reader:read-Pass1", "--dest-creds", "writer:nope", ...args],
      env,
    );
    assert.equal(wrong.code, 1);
    assert.match(wrong.stderr, /failed with the credentials from --dest-creds/);
    assert.doesNotMatch(wrong.stderr, /nope|read-Pass1/);
  },
});
