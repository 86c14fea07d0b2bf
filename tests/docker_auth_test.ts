import assert from "node:assert/strict";
import { FormatError, InvalidArgumentError, TransportError } from "../src/errors.ts";
import { Authenticator, parseChallenges } from "../src/transport/docker/auth.ts";
import { authFilePaths, lookupCredentials, parseCredsOption } from "../src/transport/docker/credentials.ts";
import { retryAfterMs } from "../src/transport/docker/retry.ts";
import { DockerSource } from "../src/transport/docker/source.ts";
import { Semaphore } from "../src/util/semaphore.ts";
import { tempDir } from "./helpers/cli.ts";

Deno.test("auth: WWW-Authenticate challenges with quoted and bare parameters", () => {
  assert.deepEqual(
    parseChallenges(
      'Bearer realm="https://auth.example.com/token",service="registry.example.com",scope="repository:a/b:pull,push"',
    ),
    [{
      scheme: "bearer",
      params: {
        realm: "https://auth.example.com/token",
        service: "registry.example.com",
        scope: "repository:a/b:pull,push",
      },
    }],
  );
  assert.deepEqual(parseChallenges('Basic realm="Registry Realm"'), [
    { scheme: "basic", params: { realm: "Registry Realm" } },
  ]);
  assert.deepEqual(parseChallenges('Basic realm="a \\"q\\"", Bearer realm=http://x/t, error=invalid_token'), [
    { scheme: "basic", params: { realm: 'a "q"' } },
    { scheme: "bearer", params: { realm: "http://x/t", error: "invalid_token" } },
  ]);
  assert.deepEqual(parseChallenges(""), []);
});

Deno.test("credentials: --creds USER:PASS, the password may hold colons", () => {
  assert.deepEqual(parseCredsOption("me:pa:ss"), { username: "me", password: "pa:ss", source: "--creds" });
  assert.throws(() => parseCredsOption("nocolon"), InvalidArgumentError);
  assert.throws(() => parseCredsOption(":pass"), InvalidArgumentError);
});

Deno.test("credentials: containers-auth.json order; --authfile and REGISTRY_AUTH_FILE are the only file read", async () => {
  await using tmp = await tempDir();
  const t = tmp.path;
  const auth = (user: string, pass: string) => ({ auth: btoa(`${user}:${pass}`) });
  const write = async (path: string, doc: unknown) => {
    await Deno.mkdir(path.slice(0, path.lastIndexOf("/")), { recursive: true });
    await Deno.writeTextFile(path, JSON.stringify(doc));
  };
  await write(`${t}/explicit.json`, { auths: { "reg.example.com": auth("file", "one") } });
  await write(`${t}/flag.json`, { auths: { "reg.example.com": auth("flag", "one") } });
  await write(`${t}/run/containers/auth.json`, {
    auths: { "reg.example.com": auth("runtime", "two"), "other.example.com:5000": auth("runtime-other", "x") },
  });
  await write(`${t}/root/run/containers/${Deno.uid()}/auth.json`, {
    auths: { "reg.example.com": auth("per-uid", "2") },
  });
  await write(`${t}/home/.config/containers/auth.json`, {
    auths: {
      "reg.example.com/team/app": auth("config-repo", "three"),
      "reg.example.com/team": auth("config-team", "three"),
      "third.example.com": { auth: "" }, // kept by a credential helper: this file has none
    },
  });
  await write(`${t}/home/.docker/config.json`, {
    auths: { "https://index.docker.io/v1/": auth("hub", "four"), "third.example.com": auth("docker", "five") },
  });
  await Deno.writeTextFile(
    `${t}/home/.dockercfg`,
    JSON.stringify({ "https://legacy.example.com": auth("legacy", "6") }),
  );
  const env = {
    REGISTRY_AUTH_FILE: `${t}/explicit.json`,
    XDG_RUNTIME_DIR: `${t}/run`,
    HOME: `${t}/home`,
    DELTASHIP_SYSTEM_ROOT: `${t}/root`,
  };
  const paths = (e: Record<string, string>, authfile?: string) => authFilePaths(e, authfile).map((p) => p.path);
  assert.deepEqual(paths(env), [`${t}/explicit.json`]);
  assert.deepEqual(paths(env, `${t}/flag.json`), [`${t}/flag.json`]);
  const { REGISTRY_AUTH_FILE: _, ...noExplicit } = env;
  assert.deepEqual(paths(noExplicit), [
    `${t}/run/containers/auth.json`,
    `${t}/home/.config/containers/auth.json`,
    `${t}/home/.docker/config.json`,
    `${t}/home/.dockercfg`,
  ]);
  const { XDG_RUNTIME_DIR: __, ...noRuntime } = noExplicit;
  assert.equal(paths(noRuntime)[0], `${t}/root/run/containers/${Deno.uid()}/auth.json`);
  assert.equal(paths({})[0], `/run/containers/${Deno.uid()}/auth.json`);

  const found = async (domain: string, repo: string, e: Record<string, string>, authfile?: string) => {
    const c = await lookupCredentials(domain, repo, { env: e, ...(authfile ? { authfile } : {}) });
    return c && "username" in c ? `${c.username} ${c.source}` : c;
  };
  const explicit = parseCredsOption("cli:pw");
  assert.equal(await lookupCredentials("reg.example.com", "app", { env, explicit }), explicit);
  assert.equal(await found("reg.example.com", "team/app", env), `file ${t}/explicit.json`);
  assert.equal(await found("reg.example.com", "team/app", env, `${t}/flag.json`), `flag ${t}/flag.json`);
  // The explicit file is the only one: nothing there, nothing found.
  assert.equal(await found("other.example.com:5000", "x", env), undefined);
  assert.equal(await found("reg.example.com", "team/app", noExplicit), `runtime ${t}/run/containers/auth.json`);
  assert.equal(
    await found("reg.example.com", "team/app", noRuntime),
    `per-uid ${t}/root/run/containers/${Deno.uid()}/auth.json`,
  );
  const homeOnly = { HOME: `${t}/home`, DELTASHIP_SYSTEM_ROOT: `${t}/nowhere` };
  const config = `${t}/home/.config/containers/auth.json`;
  assert.equal(await found("reg.example.com", "team/app/sub", homeOnly), `config-repo ${config}`); // most specific key
  assert.equal(await found("reg.example.com", "team/other", homeOnly), `config-team ${config}`);
  assert.equal(await found("reg.example.com", "solo", homeOnly), undefined);
  assert.equal(await found("docker.io", "library/alpine", homeOnly), `hub ${t}/home/.docker/config.json`); // URL key
  assert.equal(await found("third.example.com", "x", homeOnly), `docker ${t}/home/.docker/config.json`); // next file
  assert.equal(await found("legacy.example.com", "x", homeOnly), `legacy ${t}/home/.dockercfg`);
  const dockerConfig = {
    HOME: `${t}/nowhere`,
    DOCKER_CONFIG: `${t}/home/.docker`,
    DELTASHIP_SYSTEM_ROOT: `${t}/nowhere`,
  };
  assert.equal(await found("third.example.com", "x", dockerConfig), `docker ${t}/home/.docker/config.json`);
});

Deno.test("credentials: credHelpers and credsStore name the helper, which is never run", async () => {
  await using tmp = await tempDir();
  const path = `${tmp.path}/auth.json`;
  await Deno.writeTextFile(
    path,
    JSON.stringify({
      auths: { "plain.example.com": { auth: btoa("u:p") }, "stored.example.com": {} },
      credHelpers: { "helped.example.com": "secretservice" },
      credsStore: "desktop",
    }),
  );
  const env = { REGISTRY_AUTH_FILE: path };
  assert.deepEqual(await lookupCredentials("helped.example.com", "a", { env }), {
    program: "docker-credential-secretservice",
    file: path,
    field: "credHelpers",
  });
  assert.deepEqual(await lookupCredentials("stored.example.com", "a", { env }), {
    program: "docker-credential-desktop",
    file: path,
    field: "credsStore",
  });
  assert.equal((await lookupCredentials("plain.example.com", "a", { env }) as { username: string }).username, "u");
  // The registry's refusal names the helper in one line.
  const auth = new Authenticator(
    "helped.example.com",
    await lookupCredentials("helped.example.com", "a", { env }),
    () => Promise.reject(new Error("unused")),
  );
  assert.throws(
    () => auth.unauthorized('Basic realm="r"', "repository:a:pull", undefined),
    /helped\.example\.com requires authentication; its credentials are kept by the credential helper docker-credential-secretservice \(credHelpers in .*auth\.json\), which deltaship cannot run/,
  );
});

Deno.test("credentials: broken auth files fail naming the file, never the secret", async () => {
  await using tmp = await tempDir();
  const path = `${tmp.path}/auth.json`;
  const env = { REGISTRY_AUTH_FILE: path };
  await Deno.writeTextFile(path, `{"auths": {"reg.example.com": {"auth": "c2VjcmV0LXZhbHVl"`);
  await assert.rejects(lookupCredentials("reg.example.com", "a", { env }), (e: unknown) => {
    assert.ok(e instanceof FormatError);
    assert.match(e.message, /auth\.json is not valid JSON/);
    assert.doesNotMatch(e.message, /c2VjcmV0/);
    return true;
  });
  await Deno.writeTextFile(path, JSON.stringify({ auths: { "reg.example.com": { auth: "!!not-base64-secret!!" } } }));
  await assert.rejects(lookupCredentials("reg.example.com", "a", { env }), (e: unknown) => {
    assert.ok(e instanceof FormatError);
    assert.match(e.message, /"reg\.example\.com" is not base64 of USER:PASS/);
    assert.doesNotMatch(e.message, /secret/);
    return true;
  });
});

/** A token endpoint stand-in that counts requests per scope. */
function tokenEndpoint(reply: (url: URL, headers: Headers) => Response) {
  const calls: { url: URL; headers: Headers }[] = [];
  return {
    calls,
    fetch: (url: URL, headers: Headers) => {
      calls.push({ url, headers });
      return Promise.resolve(reply(url, headers));
    },
  };
}

Deno.test("auth: Bearer tokens are fetched once per scope, with credentials, and again when refused", async () => {
  let n = 0;
  const endpoint = tokenEndpoint(() => Response.json({ token: `tok-${++n}`, expires_in: 300 }));
  const creds = parseCredsOption("alice:pw-1234");
  const auth = new Authenticator("reg.example.com", creds, endpoint.fetch);
  assert.equal(await auth.header("repository:a:pull"), undefined); // nothing known before the first challenge
  auth.unauthorized('Bearer realm="https://auth.example.com/token",service="svc"', "repository:a:pull", undefined);
  const [h1, h2] = await Promise.all([auth.header("repository:a:pull"), auth.header("repository:a:pull")]);
  assert.equal(h1, "Bearer tok-1");
  assert.equal(h2, "Bearer tok-1");
  assert.equal(endpoint.calls.length, 1);
  const url = endpoint.calls[0].url;
  assert.equal(url.origin + url.pathname, "https://auth.example.com/token");
  assert.equal(url.searchParams.get("service"), "svc");
  assert.equal(url.searchParams.get("scope"), "repository:a:pull");
  assert.equal(url.searchParams.get("account"), "alice");
  assert.equal(endpoint.calls[0].headers.get("authorization"), `Basic ${btoa("alice:pw-1234")}`);
  assert.equal(await auth.header("repository:b:pull"), "Bearer tok-2");
  assert.equal(await auth.header("repository:a:pull"), "Bearer tok-1");
  // the registry refuses tok-1: it is dropped and fetched again
  auth.unauthorized('Bearer realm="https://auth.example.com/token",service="svc"', "repository:a:pull", h1);
  assert.equal(await auth.header("repository:a:pull"), "Bearer tok-3");
  assert.equal(endpoint.calls.length, 3);
  assert.equal(auth.redact("x tok-3 y pw-1234 z"), "x *** y *** z");
});

Deno.test("auth: refused credentials and missing ones are clear errors without secrets", async () => {
  const endpoint = tokenEndpoint(() => new Response("denied: alice pw-secret-9", { status: 401 }));
  const creds = parseCredsOption("alice:pw-secret-9");
  const bearer = new Authenticator("reg.example.com", creds, endpoint.fetch);
  bearer.unauthorized('Bearer realm="https://auth.example.com/token"', "repository:a:pull", undefined);
  await assert.rejects(bearer.header("repository:a:pull"), (e: unknown) => {
    assert.ok(e instanceof TransportError);
    assert.match(e.message, /authentication to reg\.example\.com failed with the credentials from --creds/);
    assert.doesNotMatch(e.message, /pw-secret-9|alice/);
    return true;
  });

  const basic = new Authenticator("reg.example.com", creds, endpoint.fetch);
  basic.unauthorized('Basic realm="r"', "repository:a:pull", undefined);
  const sent = await basic.header("repository:a:pull");
  assert.equal(sent, `Basic ${btoa("alice:pw-secret-9")}`);
  assert.throws(() => basic.unauthorized('Basic realm="r"', "repository:a:pull", sent), (e: unknown) => {
    assert.ok(e instanceof TransportError);
    assert.doesNotMatch(e.message, /pw-secret-9|alice|YWxpY2/);
    return true;
  });

  const anonymous = new Authenticator("reg.example.com", undefined, endpoint.fetch);
  assert.throws(
    () => anonymous.unauthorized('Basic realm="r"', "repository:a:pull", undefined),
    /requires authentication: pass --creds USER:PASS/,
  );

  // credentials never go to a plain-HTTP realm elsewhere unless TLS checks were turned off
  const plain = new Authenticator("reg.example.com", creds, endpoint.fetch);
  plain.unauthorized('Bearer realm="http://auth.example.com/token"', "repository:a:pull", undefined);
  await assert.rejects(plain.header("repository:a:pull"), /plain HTTP: refusing to send credentials/);
});

Deno.test("retry: Retry-After as seconds or an HTTP date, capped", () => {
  assert.equal(retryAfterMs("3", 60_000), 3000);
  assert.equal(retryAfterMs("120", 30_000), 30_000);
  const now = Date.parse("2025-01-01T00:00:00Z");
  assert.equal(retryAfterMs("Wed, 01 Jan 2025 00:00:05 GMT", 60_000, now), 5000);
  assert.equal(retryAfterMs("Tue, 31 Dec 2024 00:00:00 GMT", 60_000, now), 0);
  assert.equal(retryAfterMs("soon", 60_000), undefined);
  assert.equal(retryAfterMs(null, 60_000), undefined);
});

Deno.test("semaphore: at most N holders, waiters served in order, double release harmless", async () => {
  const s = new Semaphore(2);
  const r1 = await s.acquire();
  const r2 = await s.acquire();
  const order: number[] = [];
  const third = s.acquire().then((r) => (order.push(3), r));
  const fourth = s.acquire().then((r) => (order.push(4), r));
  await new Promise((r) => setTimeout(r, 10));
  assert.deepEqual(order, []);
  assert.equal(s.held, 2);
  r1();
  r1(); // no effect
  const r3 = await third;
  assert.deepEqual(order, [3]);
  assert.equal(s.held, 2);
  r2();
  (await fourth)();
  r3();
  assert.equal(s.held, 0);
});

Deno.test("auth: a token response trickled a byte at a time fails at the deadline, naming the token server", async () => {
  const started = performance.now();
  let tokenRequests = 0;
  let sent = 0;
  const body = new TextEncoder().encode(JSON.stringify({ token: "never-complete" }));
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req) => {
    const u = new URL(req.url);
    if (u.pathname === "/token") {
      tokenRequests++;
      return new Response(
        new ReadableStream<Uint8Array>({
          async pull(c) {
            await new Promise((r) => setTimeout(r, 200)); // never quiet for the 1 s idle timeout
            if (sent >= body.length) return c.close();
            c.enqueue(body.slice(sent, ++sent));
          },
        }, { highWaterMark: 0 }),
        { headers: { "content-type": "application/json" } },
      );
    }
    if (req.headers.has("authorization")) return new Response("unexpected", { status: 500 });
    return new Response("auth", {
      status: 401,
      headers: { "www-authenticate": `Bearer realm="http://${req.headers.get("host")}/token",service="test"` },
    });
  });
  try {
    const host = `127.0.0.1:${server.addr.port}`;
    const source = await DockerSource.open(`${host}/app:v1`, {
      env: { DELTASHIP_HTTP_TIMEOUT_MS: "1000", DELTASHIP_HTTP_DEADLINE_MS: "1500", DELTASHIP_RETRY_BASE_MS: "5" },
    });
    try {
      // A blob: no document deadline of its own, so the token's is what ends the wait.
      const blob = await source.blob({
        mediaType: "application/octet-stream",
        digest: `sha256:${"a".repeat(64)}`,
        size: 1,
      });
      await assert.rejects(
        blob.pipeTo(new WritableStream()),
        (e) =>
          e instanceof TransportError &&
          e.message ===
            `token request to http://${host}/token: not received within the deadline of 1.5 s (DELTASHIP_HTTP_DEADLINE_MS changes it)`,
      );
      const ms = performance.now() - started;
      assert.ok(ms > 1400, `failed after ${ms.toFixed(0)} ms, before the deadline of 1500 ms`);
      // Not later either: one token request, given up while most of its body was still to come (a byte per 0.2 s).
      assert.equal(tokenRequests, 1);
      assert.ok(sent < body.length / 2, `${sent} of ${body.length} bytes sent`);
      // A manifest: its own deadline covers the token fetch it waits for.
      await assert.rejects(source.root(), /manifest: not received within the deadline of 1\.5 s/);
    } finally {
      await source.close();
    }
  } finally {
    await server.shutdown();
  }
});
