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
import { type CliResult, deltashipProcess, runCli, tempDir } from "./helpers/cli.ts";
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
// deno-lint-ignore no-explicit-any
async function pullOk(
  dir: string,
  name: string,
  src: string,
  env: Record<string, string>,
  ...extra: string[]
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
