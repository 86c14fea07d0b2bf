/**
 * Network faults between deltaship and a real registry, injected by a proxy in
 * front of it: error statuses and 429s are retried, a body cut off or stalled
 * midway resumes with a Range request (or restarts when Range is ignored),
 * blob redirects to another host carry no Authorization, and corrupted bytes
 * fail clearly with the repository unchanged.
 */
import assert from "node:assert/strict";
import { sha256 } from "../src/util/digest.ts";
import { type CliResult, runCli, tempDir } from "./helpers/cli.ts";
import { expectCleanFailure } from "./helpers/failure.ts";
import {
  editBody,
  faultAfter,
  type FaultHandler,
  isBlobGet,
  isManifestGet,
  startProxy,
  trickle,
} from "./helpers/fault_proxy.ts";
import { haveTools, run } from "./helpers/interop.ts";
import { sampleTar, writeImage, type WrittenImage } from "./helpers/oci.ts";
import { pushImage, type Registry, startRegistry, storedBlobPath } from "./helpers/registry.ts";
import { buildTar } from "./helpers/tar.ts";

const TOOLS = ["docker-registry", "skopeo"];
/** Size of the big layer's content: incompressible, so its blob is about as large. */
const BIG = 1_500_000;

interface Fixture {
  tmp: string;
  reg: Registry;
  img: WrittenImage;
  /** The big layer's blob digest. */
  big: string;
}

/** A registry holding `app:v1`: a big incompressible layer and a small one. */
async function fixture(tmp: string, auth?: Record<string, unknown>, creds?: string): Promise<Fixture> {
  const reg = await startRegistry(auth ? { auth } : {});
  const content = new Uint8Array(BIG);
  for (let o = 0; o < BIG; o += 65536) crypto.getRandomValues(content.subarray(o, Math.min(BIG, o + 65536)));
  const img = await writeImage(`${tmp}/layout`, {
    tag: "v1",
    layers: [{ tar: buildTar([{ path: "big.bin", content }]) }, { tar: sampleTar("small") }],
  });
  await pushImage(`oci:${tmp}/layout:v1`, `docker://${reg.host}/app:v1`, { creds });
  return { tmp, reg, img, big: img.layers[0].digest };
}

/** Pulls through `host` into a fresh repository with fast retries. */
function pull(f: Fixture, host: string, repo: string, extra: string[] = [], env: Record<string, string> = {}) {
  return runCli(["--repo", repo, "--json", "pull", ...extra, `docker://${host}/app:v1`], {
    HOME: f.tmp,
    DELTASHIP_RETRY_BASE_MS: "5",
    ...env,
  });
}

/** Asserts the pull succeeded with the fixture's exact image. */
async function assertPulled(f: Fixture, repo: string, r: CliResult): Promise<void> {
  assert.equal(r.code, 0, r.stderr);
  assert.equal(JSON.parse(r.stdout).manifest, f.img.manifest);
  for (let i = 0; i < f.img.diffIds.length; i++) {
    const layer = await runCli(["--repo", repo, "layer", f.img.diffIds[i]]);
    assert.equal(sha256(layer.stdoutBytes), f.img.diffIds[i]);
  }
  assert.equal((await runCli(["--repo", repo, "fsck"])).code, 0);
  assert.deepEqual([...Deno.readDirSync(`${repo}/tmp`)], []);
}

/** Requests to the big layer's blob that the proxy logged. */
function bigRequests(f: Fixture, proxy: { requests: { path: string; range: string | null; at: number }[] }) {
  return proxy.requests.filter((q) => q.path.endsWith(`/blobs/${f.big}`));
}

/** Runs `body` with a fixture and a proxy in front of its registry. */
async function withProxy(
  handler: (f: Fixture) => FaultHandler,
  body: (f: Fixture, proxy: ReturnType<typeof startProxy>) => Promise<void>,
): Promise<void> {
  await using tmp = await tempDir();
  const f = await fixture(tmp.path);
  try {
    await using proxy = startProxy(f.reg.url, handler(f));
    await body(f, proxy);
  } finally {
    await f.reg.stop();
  }
}

Deno.test({
  name: "faults: 5xx answers are retried, and a 429 waits as long as Retry-After says",
  ignore: !haveTools("registry faults", ...TOOLS),
  async fn() {
    const seen = new Map<string, number>();
    await withProxy(
      (f) => async (req, { path, forward }) => {
        const n = (seen.get(path) ?? 0) + 1;
        seen.set(path, n);
        if (isManifestGet(req, path) && n === 1) return new Response("bad gateway", { status: 502 });
        if (path.endsWith(f.big) && n === 1) return new Response("oops", { status: 500 });
        if (path.endsWith(f.big) && n === 2) {
          return new Response("slow down", { status: 429, headers: { "retry-after": "1" } });
        }
        return await forward();
      },
      async (f, proxy) => {
        const repo = `${f.tmp}/repo`;
        await assertPulled(f, repo, await pull(f, proxy.host, repo));
        const big = bigRequests(f, proxy);
        assert.equal(big.length, 3);
        assert.ok(big[2].at - big[1].at >= 900, `Retry-After: 1 honoured (waited ${big[2].at - big[1].at} ms)`);
        assert.ok(big[1].at - big[0].at < 900, "a 500 waits only the (short) backoff");
        assert.equal(proxy.requests.filter((q) => q.path.endsWith("/manifests/v1")).length, 2);
      },
    );
  },
});

Deno.test({
  name: "faults: a registry that keeps failing gives up after bounded tries, repository unchanged",
  ignore: !haveTools("registry faults", ...TOOLS),
  async fn() {
    await withProxy(
      (f) => async (_req, { path, forward }) =>
        path.endsWith(f.big)
          ? new Response("down", { status: 503, statusText: "Service Unavailable" })
          : await forward(),
      async (f, proxy) => {
        const repo = `${f.tmp}/repo`;
        await expectCleanFailure(
          repo,
          ["pull", `docker://${proxy.host}/app:v1`],
          new RegExp(`GET http://${proxy.host}/v2/app/blobs/${f.big}: HTTP 503 Service Unavailable, after 5 tries`),
          { HOME: f.tmp, DELTASHIP_RETRY_BASE_MS: "5" },
        );
        assert.equal(bigRequests(f, proxy).length, 5);
      },
    );
  },
});

Deno.test({
  name: "faults: a body dropped midway resumes with a Range request from the first missing byte",
  ignore: !haveTools("registry faults", ...TOOLS),
  async fn() {
    await withProxy(
      (f) => async (req, { path, forward, signal }) => {
        const res = await forward();
        if (path.endsWith(f.big) && req.headers.get("range") === null) return faultAfter(res, 400_000, "cut", signal);
        return res;
      },
      async (f, proxy) => {
        const repo = `${f.tmp}/repo`;
        // -j 1: inline; the default (workers) is covered by the stall case below
        await assertPulled(f, repo, await pull(f, proxy.host, repo, ["-j", "1"]));
        assert.deepEqual(bigRequests(f, proxy).map((q) => q.range), [null, "bytes=400000-"]);
      },
    );
  },
});

Deno.test({
  name: "faults: a stalled body times out and resumes (layers in workers)",
  ignore: !haveTools("registry faults", ...TOOLS),
  async fn() {
    await withProxy(
      (f) => async (req, { path, forward, signal }) => {
        const res = await forward();
        if (path.endsWith(f.big) && req.headers.get("range") === null) return faultAfter(res, 250_000, "stall", signal);
        return res;
      },
      async (f, proxy) => {
        const repo = `${f.tmp}/repo`;
        const r = await pull(f, proxy.host, repo, ["-j", "2"], { DELTASHIP_HTTP_TIMEOUT_MS: "1000" });
        await assertPulled(f, repo, r);
        assert.deepEqual(bigRequests(f, proxy).map((q) => q.range), [null, "bytes=250000-"]);
      },
    );
  },
});

Deno.test({
  name: "faults: when the server ignores Range, the blob restarts and the bytes already passed on are skipped",
  ignore: !haveTools("registry faults", ...TOOLS),
  async fn() {
    let cut = false;
    await withProxy(
      (f) => async (req, { path, forward, signal }) => {
        if (!path.endsWith(f.big)) return await forward();
        const headers = new Headers(req.headers);
        headers.delete("range"); // a server without Range support
        const res = await forward({ headers });
        if (cut) return res;
        cut = true;
        return faultAfter(res, 700_000, "cut", signal);
      },
      async (f, proxy) => {
        const repo = `${f.tmp}/repo`;
        await assertPulled(f, repo, await pull(f, proxy.host, repo));
        assert.deepEqual(bigRequests(f, proxy).map((q) => q.range), [null, "bytes=700000-"]);
      },
    );
  },
});

Deno.test({
  name: "faults: a body that keeps breaking at the same byte fails clearly, repository unchanged",
  ignore: !haveTools("registry faults", ...TOOLS),
  async fn() {
    await withProxy(
      (f) => async (req, { path, forward, signal }) => {
        if (!path.endsWith(f.big)) return await forward();
        const headers = new Headers(req.headers);
        headers.delete("range");
        return faultAfter(await forward({ headers }), 100_000, "cut", signal);
      },
      async (f, proxy) => {
        await expectCleanFailure(
          `${f.tmp}/repo`,
          ["pull", `docker://${proxy.host}/app:v1`],
          new RegExp(`blob ${f.big}: download failed after 100000 of \\d+ bytes \\(5 interruptions\\)`),
          { HOME: f.tmp, DELTASHIP_RETRY_BASE_MS: "5" },
        );
      },
    );
  },
});

Deno.test({
  name: "faults: a corrupted byte in a layer blob fails naming the blob, repository unchanged",
  ignore: !haveTools("registry faults", ...TOOLS),
  async fn() {
    await withProxy(
      (f) => async (_req, { path, forward, signal }) => {
        const res = await forward();
        if (!path.endsWith(f.big)) return res;
        return editBody(res, (chunk, offset) => {
          const at = 500_000 - offset;
          if (at < 0 || at >= chunk.length) return chunk;
          const copy = chunk.slice();
          copy[at] ^= 0x20;
          return copy;
        }, signal);
      },
      async (f, proxy) => {
        const repo = `${f.tmp}/repo`;
        // a good image first, so "unchanged" means something
        await using tmp2 = await tempDir();
        await writeImage(`${tmp2.path}/l`, { tag: "good", layers: [{ tar: sampleTar("good") }] });
        assert.equal((await runCli(["--repo", repo, "pull", `oci:${tmp2.path}/l:good`])).code, 0);
        for (const jobs of ["1", "2"]) {
          await expectCleanFailure(
            repo,
            ["-j", jobs, "pull", `docker://${proxy.host}/app:v1`],
            new RegExp(`${f.big}: digest mismatch: expected ${f.big}, got sha256:`),
            { HOME: f.tmp, DELTASHIP_RETRY_BASE_MS: "5" },
          );
        }
      },
    );
  },
});

Deno.test({
  name: "faults: a manifest or config trickled a byte at a time fails at the document deadline, not never",
  ignore: !haveTools("registry faults", ...TOOLS),
  async fn() {
    let target = "";
    await withProxy(
      () => async (req, { path, forward, signal }) => {
        const res = await forward();
        const hit = target === "manifest" ? isManifestGet(req, path) : target !== "" && path.endsWith(target);
        return hit ? trickle(res, 300, signal) : res; // never quiet for the 1 s idle timeout
      },
      async (f, proxy) => {
        const env = {
          HOME: f.tmp,
          DELTASHIP_RETRY_BASE_MS: "5",
          DELTASHIP_HTTP_TIMEOUT_MS: "1000",
          DELTASHIP_HTTP_DEADLINE_MS: "2000",
        };
        for (
          const [which, shown, size] of [
            ["manifest", "manifest", f.img.manifestBytes.length],
            [f.img.config, `blob ${f.img.config}`, f.img.configBytes.length],
          ] as const
        ) {
          target = which;
          proxy.requests.length = 0;
          const started = performance.now();
          await expectCleanFailure(
            `${f.tmp}/repo`,
            ["pull", `docker://${proxy.host}/app:v1`],
            new RegExp(
              `^deltaship: docker://${proxy.host}/app:v1: ${shown}: not received within the deadline of 2 s ` +
                `\\(DELTASHIP_HTTP_DEADLINE_MS changes it\\)\n$`,
            ),
            env,
          );
          const ms = performance.now() - started;
          assert.ok(ms > 1900, `${which}: failed after ${ms.toFixed(0)} ms, before the deadline of 2000 ms`);
          // Not later either: asked for once, and given up while most of it was still to come (a byte per 0.3 s).
          const asked = proxy.requests.filter((q) =>
            which === "manifest" ? /\/manifests\//.test(q.path) : q.path.endsWith(which)
          );
          assert.equal(asked.length, 1, `${which}: requests`);
          assert.ok(asked[0].bytesOut < size / 2, `${which}: ${asked[0].bytesOut} of ${size} bytes sent`);
        }
      },
    );
  },
});

Deno.test({
  name: "faults: a manifest whose bytes do not match its digest or Docker-Content-Digest is refused",
  ignore: !haveTools("registry faults", ...TOOLS),
  async fn() {
    await withProxy(
      () => async (req, { path, forward, signal }) => {
        const res = await forward();
        if (!isManifestGet(req, path)) return res;
        // one changed byte inside a JSON string: still valid JSON
        return editBody(res, (chunk, offset) => {
          if (offset > 0) return chunk;
          const text = new TextDecoder().decode(chunk);
          return new TextEncoder().encode(text.replace('"schemaVersion":2', '"schemaVersion":2 '));
        }, signal);
      },
      async (f, proxy) => {
        const env = { HOME: f.tmp, DELTASHIP_RETRY_BASE_MS: "5" };
        await expectCleanFailure(
          `${f.tmp}/repo`,
          ["pull", `docker://${proxy.host}/app:v1`],
          new RegExp(`manifest v1 \\(Docker-Content-Digest\\): digest mismatch: expected ${f.img.manifest}`),
          env,
        );
        await expectCleanFailure(
          `${f.tmp}/repo`,
          ["pull", `docker://${proxy.host}/app@${f.img.manifest}`],
          new RegExp(`manifest: digest mismatch: expected ${f.img.manifest}`),
          env,
        );
      },
    );
  },
});

Deno.test({
  name: "faults: blob GETs redirected to another host follow there without the registry's Authorization",
  ignore: !haveTools("registry redirect", ...TOOLS, "htpasswd"),
  async fn() {
    await using tmp = await tempDir();
    await Deno.writeTextFile(`${tmp.path}/htpasswd`, await run("htpasswd", "-Bbn", "bob", "bob-pass-77"));
    const f = await fixture(
      tmp.path,
      { htpasswd: { realm: "deltaship-test", path: `${tmp.path}/htpasswd` } },
      "bob:bob-pass-77",
    );
    try {
      // The second host: blob storage serving the registry's files, like a signed-URL object store.
      const storeRequests: { path: string; authorization: boolean }[] = [];
      const store = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
        const u = new URL(req.url);
        storeRequests.push({ path: u.pathname, authorization: req.headers.has("authorization") });
        if (u.searchParams.get("sig") !== "s3cr3t-signature") return new Response("bad signature", { status: 403 });
        const digest = u.pathname.slice("/blobs/".length);
        return new Response((await Deno.open(storedBlobPath(f.reg.storage, digest))).readable);
      });
      try {
        await using proxy = startProxy(f.reg.url, async (req, { path, forward }) => {
          if (!isBlobGet(req, path) || !req.headers.has("authorization")) return await forward();
          const digest = path.slice(path.lastIndexOf("/") + 1);
          const location = `http://127.0.0.1:${store.addr.port}/blobs/${digest}?sig=s3cr3t-signature`;
          return new Response(null, { status: 307, headers: { location } });
        });
        const repo = `${tmp.path}/repo`;
        await assertPulled(f, repo, await pull(f, proxy.host, repo, ["--creds", "bob:bob-pass-77"]));
        const blobDigests = [f.img.config, ...f.img.layers.map((l) => l.digest)].sort();
        assert.deepEqual(storeRequests.map((q) => q.path.slice("/blobs/".length)).sort(), blobDigests);
        assert.ok(storeRequests.every((q) => !q.authorization), "no Authorization header reached the other host");
        const authed = proxy.requests.filter((q) => q.path.includes("/blobs/") && q.authorization);
        assert.equal(authed.length, blobDigests.length, "the registry itself got the credentials");

        // A failure there names the URL without its query (a signed URL's secret).
        await using failing = startProxy(f.reg.url, async (req, { path, forward }) => {
          if (!isBlobGet(req, path) || !req.headers.has("authorization")) return await forward();
          const location = `http://127.0.0.1:${store.addr.port}/blobs/x?sig=wrong-signature`;
          return new Response(null, { status: 307, headers: { location } });
        });
        const r = await expectCleanFailure(
          `${tmp.path}/repo2`,
          ["pull", "--creds", "bob:bob-pass-77", `docker://${failing.host}/app:v1`],
          new RegExp(`access denied: GET http://127\\.0\\.0\\.1:${store.addr.port}/blobs/x: HTTP 403`),
          { HOME: tmp.path, DELTASHIP_RETRY_BASE_MS: "5" },
        );
        assert.doesNotMatch(r.stderr, /wrong-signature|bob-pass-77/);
      } finally {
        await store.shutdown();
      }
    } finally {
      await f.reg.stop();
    }
  },
});

/**
 * A blob store on a raw socket that breaks every connection: the first gets the
 * response head and half of `body`, later ones are closed once their request is in.
 */
function breakingStore(body: Uint8Array): { port: number; close(): void; connections(): number } {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  let n = 0;
  (async () => {
    for await (const conn of listener) {
      const first = n++ === 0;
      (async () => {
        try {
          await conn.read(new Uint8Array(16 << 10));
          if (first) {
            const head = `HTTP/1.1 200 OK\r\ncontent-length: ${body.length}\r\n\r\n`;
            await conn.write(new TextEncoder().encode(head));
            const half = body.subarray(0, body.length >> 1);
            for (let o = 0; o < half.length;) o += await conn.write(half.subarray(o));
          }
        } catch { /* the client went away */ }
        conn.close();
      })();
    }
  })().catch(() => {});
  return { port: (listener.addr as Deno.NetAddr).port, close: () => listener.close(), connections: () => n };
}

Deno.test({
  name: "faults: a redirected blob whose connections keep dropping fails naming the URL without its signed query",
  ignore: !haveTools("registry faults", ...TOOLS),
  async fn() {
    let store: ReturnType<typeof breakingStore> | undefined;
    try {
      await withProxy(
        (f) => {
          store = breakingStore(Deno.readFileSync(storedBlobPath(f.reg.storage, f.big)));
          const port = store.port;
          return async (req, { path, forward }) => {
            if (!isBlobGet(req, path) || !path.endsWith(f.big)) return await forward();
            const location =
              `http://127.0.0.1:${port}/blobs/${f.big}?X-Amz-Signature=secret-sig-0042&X-Amz-Credential=AKIA`;
            return new Response(null, { status: 307, headers: { location } });
          };
        },
        async (f, proxy) => {
          const target = `http://127.0.0.1:${store!.port}/blobs/${f.big}`;
          for (const json of [false, true]) {
            const r = await expectCleanFailure(
              `${f.tmp}/repo`,
              [...(json ? ["--json"] : []), "pull", `docker://${proxy.host}/app:v1`],
              new RegExp(
                `^deltaship: layer ${f.big}: docker://${proxy.host}/app:v1: blob ${f.big}: ` +
                  `GET http://${proxy.host}/v2/app/blobs/${f.big} \\(redirected to ${target}\\) failed \\(5 tries\\): ` +
                  `.*connection closed before message completed\\n$`,
              ),
              { HOME: f.tmp, DELTASHIP_RETRY_BASE_MS: "5" },
            );
            assert.doesNotMatch(r.stdout + r.stderr, /secret|AKIA|X-Amz|\?/, json ? "--json" : "text");
          }
          assert.ok(store!.connections() >= 6, "the body broke, then each try was dropped");
        },
      );
    } finally {
      store?.close();
    }
  },
});
