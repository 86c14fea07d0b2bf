/**
 * URLs a registry hands out (src/transport/docker/registry_url.ts): upload
 * Locations, referrers next-page Links, redirects and token realms are
 * followed only as http(s), on the registry's origin unless the protocol
 * allows another, never carrying credentials elsewhere. The attack shapes of
 * issue 20, rebuilt by a hostile front before a real docker-registry: a Link
 * to a local file or FIFO, Locations to `file:` and `data:` URLs and to another
 * server; whatever is there is never opened, sent to or printed.
 */
import assert from "node:assert/strict";
import { TransportError } from "../src/errors.ts";
import { Authenticator } from "../src/transport/docker/auth.ts";
import { DockerSource } from "../src/transport/docker/source.ts";
import {
  pathUrl,
  registryUrl,
  RegistryUrlError,
  sendsCredentials,
  withParam,
} from "../src/transport/docker/registry_url.ts";
import { type CliResult, runCli, tempDir } from "./helpers/cli.ts";
import { expectCleanFailure } from "./helpers/failure.ts";
import { countRequests, startProxy } from "./helpers/fault_proxy.ts";
import {
  type HostileFront,
  indexBytes,
  startHostileFront,
  type TwoVersions,
  twoVersions,
} from "./helpers/hostile_front.ts";
import { haveTools, run } from "./helpers/interop.ts";
import { sha256 } from "../src/util/digest.ts";

const TOOLS = ["docker-registry", "skopeo"];
/** What the local file the registry points at holds: must never show up anywhere. */
const SECRET = "TOP-SECRET-host-file-contents\n";

Deno.test("registry URLs: resolved against the answer, http(s) only, no user info, on the registry unless allowed", () => {
  const origin = "http://reg.example:5000";
  const base = new URL(`${origin}/v2/app/blobs/uploads/`);
  const upload = { kind: "upload Location" as const, base, origin };
  assert.equal(registryUrl("/v2/app/blobs/uploads/u1?s=1", upload, "w").href, `${origin}/v2/app/blobs/uploads/u1?s=1`);
  assert.equal(registryUrl("u2", upload, "w").href, `${origin}/v2/app/blobs/uploads/u2`);
  assert.equal(registryUrl(`${origin}/x`, upload, "w").href, `${origin}/x`);
  const refused = (value: string, rule: Parameters<typeof registryUrl>[1], message: RegExp) =>
    assert.throws(
      () => registryUrl(value, rule, "push x"),
      (e) => e instanceof RegistryUrlError && message.test(e.message),
    );
  for (const [value, scheme] of [["file:///etc/passwd", "file:"], ["data:,accepted", "data:"], ["ftp://h/x", "ftp:"]]) {
    for (const rule of [upload, { kind: "redirect" as const, base }, { kind: "token realm" as const }]) {
      refused(value, rule, new RegExp(`^push x: the registry's ${rule.kind} has the scheme ${scheme}; only http`));
    }
  }
  refused(`x${"y".repeat(100)}:z`, upload, /has the scheme xy{23}\.\.\.; only/);
  refused("http://user:pw@reg.example:5000/x", upload, /upload Location has user info in it; refused$/);
  refused(
    "http://other.example/x",
    upload,
    /upload Location is on http:\/\/other\.example, not on the registry \(http:\/\/reg\.example:5000\)/,
  );
  refused("https://reg.example:5000/x", { ...upload, kind: "next-page Link" }, /next-page Link is on https:/);
  refused("http://[::1", upload, /upload Location is not a URL$/);
  refused("/token", { kind: "token realm" }, /token realm is not an absolute URL$/);
  // The protocol lets these lead elsewhere.
  assert.equal(registryUrl("http://cdn.example/b?sig=1", { kind: "redirect", base }, "w").origin, "http://cdn.example");
  assert.equal(registryUrl("https://auth.example/token", { kind: "token realm" }, "w").origin, "https://auth.example");
  // Credentials go to their own origin only; paths and parameters keep it.
  assert.equal(sendsCredentials(new URL(`${origin}/v2/`), origin), true);
  assert.equal(sendsCredentials(new URL("http://cdn.example/b"), origin), false);
  assert.equal(sendsCredentials(new URL("https://reg.example:5000/v2/"), origin), false);
  assert.throws(() => pathUrl("file:///etc/passwd", origin), TypeError);
  assert.throws(() => pathUrl("//evil.example/x", origin), TypeError);
  assert.equal(withParam(pathUrl("/u?a=1", origin), "digest", "sha256:x").href, `${origin}/u?a=1&digest=sha256%3Ax`);
});

Deno.test("registry URLs: a token realm that is not http(s) is refused before anything is sent", async () => {
  let calls = 0;
  const auth = new Authenticator("reg.example", undefined, () => (calls++, Promise.resolve(new Response("{}"))));
  auth.unauthorized('Bearer realm="file:///etc/passwd",service="x"', "repository:a:pull", undefined);
  await assert.rejects(
    auth.header("repository:a:pull"),
    (e) => e instanceof TransportError && /token realm has the scheme file:; only http and https/.test(e.message),
  );
  assert.equal(calls, 0);
});

interface Setup extends TwoVersions {
  home: string;
  secret: string;
  fifo: string;
}

/** Two versions in a registry, a repository holding v1, a secret file and a FIFO on this host. */
async function setUp(dir: string): Promise<Setup> {
  const versions = await twoVersions(dir);
  const secret = `${dir}/secret.txt`;
  await Deno.writeTextFile(secret, SECRET);
  const fifo = `${dir}/fifo`;
  await run("mkfifo", fifo);
  return { ...versions, home: dir, secret, fifo };
}

function cli(home: string, args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  return runCli(args, { HOME: home, DELTASHIP_RETRY_BASE_MS: "5", ...env });
}

/** Nothing of the secret file anywhere in what a run printed. */
function assertNoSecret(r: CliResult): void {
  for (const text of [r.stdout, r.stderr]) assert.doesNotMatch(text, /TOP-SECRET|host-file/);
}

/** A server that counts what reaches it: the other origin a registry points at. */
function elsewhere(): { url: string; hits: () => number } & AsyncDisposable {
  let hits = 0;
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, () => {
    hits++;
    return new Response(indexBytes([]), { status: 202, headers: { location: "/v2/x" } });
  });
  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    hits: () => hits,
    [Symbol.asyncDispose]: () => server.shutdown(),
  };
}

Deno.test({
  name: "registry URLs: a referrers next-page Link to a local file, a FIFO or another origin is never followed",
  ignore: !haveTools("registry URLs", ...TOOLS, "mkfifo"),
  async fn() {
    await using tmp = await tempDir();
    const s = await setUp(tmp.path);
    await using _ = s.reg;
    await using other = elsewhere();
    for (
      const [target, refusal] of [
        [`file://${s.secret}`, /next-page Link has the scheme file:; only http and https URLs are followed/],
        [`file://${s.fifo}`, /next-page Link has the scheme file:; only http and https URLs are followed/],
        [`${other.url}/v2/app/referrers/x`, /next-page Link is on http:\/\/127\.0\.0\.1:\d+, not on the registry/],
      ] as const
    ) {
      // The first page lists nothing of use and points on; a fresh repository copy each time, holding v1.
      await using front: HostileFront = startHostileFront(s.reg.url, {
        listing: () => ({ body: indexBytes([]), link: `<${target}>; rel="next"` }),
      });
      const repo = `${tmp.path}/repo-${front.host.replace(/\W/g, "")}`;
      await run("cp", "-a", s.repo, repo);
      // A short document deadline: if the FIFO were opened, the pull would only wait that long, then show why.
      const r = await cli(s.home, ["--repo", repo, "--json", "pull", `docker://${front.host}/app:v2`], {
        DELTASHIP_HTTP_DEADLINE_MS: "3000",
      });
      assert.equal(r.code, 0, r.stderr);
      const out = JSON.parse(r.stdout);
      assert.equal(out.manifest, s.v2.manifest);
      assert.equal(out.discovery.way, "full");
      assert.match(out.discovery.reason, /^could not list deltas: docker:\/\/[^ ]+: referrers of sha256:\w+: /);
      assert.match(out.discovery.reason, refusal, target);
      assert.match(r.stderr, /^no delta used: could not list deltas: .*; pulling the full image\n$/);
      assert.equal(front.listings(), 1, "the first page only");
      assertNoSecret(r);
    }
    assert.equal(other.hits(), 0, "nothing reached the other origin");
  },
});

Deno.test({
  name: "registry URLs: a push given an upload Location to file:, data: or another origin refuses it, sending nothing",
  ignore: !haveTools("registry URLs push", ...TOOLS, "mkfifo"),
  async fn() {
    await using tmp = await tempDir();
    const s = await setUp(tmp.path);
    await using _ = s.reg;
    await using other = elsewhere();
    for (
      const [target, refusal] of [
        [`file://${s.secret}`, /the registry's upload Location has the scheme file:; only http and https/],
        ["data:,accepted", /the registry's upload Location has the scheme data:; only http and https/],
        [
          `${other.url}/v2/app/blobs/uploads/x`,
          /upload Location is on http:\/\/127\.0\.0\.1:\d+, not on the registry/,
        ],
      ] as const
    ) {
      await using front = startHostileFront(s.reg.url, { location: () => target });
      const r = await expectCleanFailure(
        s.repo,
        ["push", "v1", `docker://${front.host}/copy:v1`],
        new RegExp(`^deltaship: docker://${front.host}/copy:v1: .*${refusal.source}`),
        { HOME: s.home, DELTASHIP_RETRY_BASE_MS: "5" },
      );
      assertNoSecret(r);
      const counts = countRequests(front.requests);
      assert.equal(counts.kinds["PATCH upload"] ?? 0, 0, "no chunk went anywhere");
      assert.equal(counts.kinds["PUT upload"] ?? 0, 0);
      assert.equal(counts.kinds["PUT manifest"] ?? 0, 0, "no manifest names blobs that were never sent");
    }
    assert.equal(other.hits(), 0, "nothing reached the other origin");
  },
});

Deno.test({
  name: "registry URLs: a manifest redirected to a local file is refused; descriptor urls are never followed",
  ignore: !haveTools("registry URLs redirect", ...TOOLS, "mkfifo"),
  async fn() {
    await using tmp = await tempDir();
    const s = await setUp(tmp.path);
    await using _ = s.reg;
    await using redirecting = startProxy(s.reg.url, async (req, { path, forward }) => {
      if (req.method !== "GET" || !/\/manifests\//.test(path)) return await forward();
      return new Response(null, { status: 302, headers: { location: `file://${s.secret}` } });
    });
    const r = await expectCleanFailure(
      `${tmp.path}/fresh`,
      ["pull", `docker://${redirecting.host}/app:v2`],
      /^deltaship: docker:\/\/[^ ]+: manifest: the registry's redirect has the scheme file:; only http and https URLs are followed\n$/,
      { HOME: s.home, DELTASHIP_RETRY_BASE_MS: "5" },
    );
    assertNoSecret(r);

    // A manifest whose layers name foreign URLs (a file, a FIFO): the blobs still come from the registry.
    const doc = JSON.parse(new TextDecoder().decode(s.v2.manifestBytes));
    for (const l of doc.layers) l.urls = [`file://${s.secret}`, `file://${s.fifo}`];
    const bytes = new TextEncoder().encode(JSON.stringify(doc));
    await using front = startHostileFront(s.reg.url, { documents: new Map([[sha256(bytes), bytes]]) });
    const p = await cli(s.home, [
      "--repo",
      `${tmp.path}/fresh`,
      "--json",
      "pull",
      `docker://${front.host}/app@${sha256(bytes)}`,
    ]);
    assert.equal(p.code, 0, p.stderr);
    assert.equal(JSON.parse(p.stdout).manifest, sha256(bytes));
    assert.equal(countRequests(front.requests).kinds["GET blob"], 3, "config and both layers from the registry");
    assertNoSecret(p);
  },
});

Deno.test("registry URLs: credentials never follow a redirect to another origin, for the registry or its token realm", async () => {
  const seen: string[] = [];
  const manifest = new TextEncoder().encode(JSON.stringify({ schemaVersion: 2, config: {}, layers: [] }));
  // Another origin: where the token realm and the registry both redirect to.
  const other = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req) => {
    const u = new URL(req.url);
    seen.push(`other ${u.pathname} ${req.headers.get("authorization") ?? "-"}`);
    if (u.pathname === "/token") return Response.json({ token: "tok-77" });
    return new Response(manifest);
  });
  const registry = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req) => {
    const u = new URL(req.url);
    const auth = req.headers.get("authorization");
    seen.push(`registry ${u.pathname} ${auth ?? "-"}`);
    const otherUrl = `http://127.0.0.1:${other.addr.port}`;
    if (u.pathname === "/token") return new Response(null, { status: 307, headers: { location: `${otherUrl}/token` } });
    if (auth !== "Bearer tok-77") {
      const realm = `http://${req.headers.get("host")}/token`;
      return new Response(null, { status: 401, headers: { "www-authenticate": `Bearer realm="${realm}"` } });
    }
    return new Response(null, { status: 302, headers: { location: `${otherUrl}/manifest` } });
  });
  try {
    const source = await DockerSource.open(`127.0.0.1:${registry.addr.port}/app:v1`, {
      creds: "alice:pw-9",
      env: { DELTASHIP_RETRY_BASE_MS: "5" },
    });
    try {
      assert.deepEqual((await source.root()).bytes, manifest);
    } finally {
      await source.close();
    }
    assert.deepEqual(seen, [
      "registry /v2/app/manifests/v1 -",
      `registry /token Basic ${btoa("alice:pw-9")}`, // the realm gets the credentials, as the protocol has it
      "other /token -", // not where it redirects to
      "registry /v2/app/manifests/v1 Bearer tok-77",
      "other /manifest -", // nor does the registry's token go where the registry redirects to
    ]);
  } finally {
    await registry.shutdown();
    await other.shutdown();
  }
});
