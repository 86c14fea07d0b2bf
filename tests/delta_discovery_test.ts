/**
 * The registry round trip: CI pushes images (skopeo) and publishes deltas with
 * `create-delta … docker://…`; hosts `pull docker://…:TAG` by the ordinary tag
 * and get the delta that fits what they hold, or the full image (and say why).
 * Against the real docker-registry (distribution 2.8, no referrers API: the
 * fallback tag is used for real), and against a small server implementing the
 * referrers API endpoint in front of it (tests/helpers/referrers_server.ts).
 * Requests and bytes are counted in a proxy.
 */
import assert from "node:assert/strict";
import { sha256 } from "../src/util/digest.ts";
import { type CliResult, runCli, tempDir } from "./helpers/cli.ts";
import { noise } from "./helpers/data.ts";
import { expectCleanFailure } from "./helpers/failure.ts";
import { DeltaAnnotation } from "../src/delta/annotations.ts";
import { countRequests, editBody, type FaultProxy, isBlobGet, requestKind, startProxy } from "./helpers/fault_proxy.ts";
import { deltaEntry, deltaManifestTo, indexBytes, startHostileFront, twoVersions } from "./helpers/hostile_front.ts";
import { haveTools, run } from "./helpers/interop.ts";
import { sampleTar, writeImage, type WrittenImage } from "./helpers/oci.ts";
import { startReferrersServer } from "./helpers/referrers_server.ts";
import { pushImage, rawManifest, type Registry, startRegistry } from "./helpers/registry.ts";
import { buildTar } from "./helpers/tar.ts";

const TOOLS = ["docker-registry", "skopeo"];
const isBlobGetPath = (method: string, path: string) => requestKind(method, path) === "GET blob";

function cli(home: string, repo: string, args: string[]): Promise<CliResult> {
  return runCli(["--repo", repo, ...args], { HOME: home, DELTASHIP_RETRY_BASE_MS: "5" });
}

/** The app file of version `v`: 400 kB of noise with `v` small regions changed, so deltas between versions are small. */
function appFile(v: number): Uint8Array {
  const bytes = noise(400_000, 7);
  for (let r = 0; r < v; r++) bytes.fill(r + 1, 50_000 + r * 100_000, 50_000 + r * 100_000 + 64);
  return bytes;
}

/** Writes versions v0, v1, v2 (a shared base layer and the app layer) and pushes them with skopeo. */
async function publishImages(dir: string, reg: Registry): Promise<WrittenImage[]> {
  const images: WrittenImage[] = [];
  for (const v of [0, 1, 2]) {
    const img = await writeImage(`${dir}/layout`, {
      tag: `v${v}`,
      layers: [{ tar: sampleTar("base") }, { tar: buildTar([{ path: "opt/app.bin", content: appFile(v) }]) }],
      config: { config: { Labels: { version: String(v) } } },
    });
    await pushImage(`oci:${dir}/layout:v${v}`, `docker://${reg.host}/app:v${v}`);
    images.push(img);
  }
  return images;
}

/** CI: creates and pushes the delta OLD → NEW into the app repository; returns create-delta's JSON. */
// deno-lint-ignore no-explicit-any
async function publishDelta(home: string, ci: string, host: string, from: string, to: string): Promise<any> {
  const r = await cli(home, ci, [
    "--json",
    "create-delta",
    `docker://${host}/app:${from}`,
    `docker://${host}/app:${to}`,
    `docker://${host}/app`,
  ]);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout);
}

/** Pulls `ref` through `proxy` into `repo`, counting the requests it makes. */
async function countedPull(home: string, repo: string, proxy: FaultProxy, ref: string, ...extra: string[]) {
  proxy.requests.length = 0;
  const r = await cli(home, repo, ["--json", "pull", ...extra, `docker://${proxy.host}/app:${ref}`]);
  assert.equal(r.code, 0, r.stderr);
  return { out: JSON.parse(r.stdout), counts: countRequests(proxy.requests), stderr: r.stderr };
}

Deno.test({
  name: "registry round trip: published deltas are found by pull on its own; the one that fits, else the full image",
  ignore: !haveTools("delta discovery", ...TOOLS),
  async fn() {
    await using tmp = await tempDir();
    await using reg = await startRegistry();
    await using proxy = startProxy(reg.url);
    const home = tmp.path;
    const [, , v2] = await publishImages(tmp.path, reg);
    const v2Digest = sha256(await rawManifest(`${reg.host}/app:v2`));

    // Another client listed an artifact of its own (an SBOM, say) in v2's fallback index: it must stay.
    const v0Bytes = await rawManifest(`${reg.host}/app:v0`);
    const foreign = {
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      digest: sha256(v0Bytes),
      size: v0Bytes.length,
      artifactType: "application/example.sbom",
    };
    const put = await fetch(`${reg.url}/v2/app/manifests/sha256-${v2Digest.slice(7)}`, {
      method: "PUT",
      headers: { "content-type": "application/vnd.oci.image.index.v1+json" },
      body: JSON.stringify({
        schemaVersion: 2,
        mediaType: "application/vnd.oci.image.index.v1+json",
        manifests: [foreign],
      }),
    });
    await put.body?.cancel();
    assert.equal(put.status, 201);

    // CI publishes two deltas to v2: from v1 and from v0, with the default tags OLD-to-NEW.
    const ci = `${tmp.path}/ci`;
    const d1 = await publishDelta(home, ci, reg.host, "v1", "v2");
    const d0 = await publishDelta(home, ci, reg.host, "v0", "v2");
    assert.equal(d1.published.tag, "v1-to-v2");
    assert.equal(d1.published.referrer, "fallback-tag");
    assert.equal(d0.published.tag, "v0-to-v2");
    assert.equal(d1.target, v2Digest);
    const fallback = JSON.parse(
      new TextDecoder().decode(await rawManifest(`${reg.host}/app:sha256-${v2Digest.slice(7)}`)),
    );
    assert.deepEqual(fallback.manifests.map((m: { digest: string }) => m.digest), [
      foreign.digest,
      d1.manifest,
      d0.manifest,
    ]);
    assert.deepEqual(fallback.manifests[0], foreign);
    assert.ok(d1.stats.layerBytes < d0.stats.layerBytes, "the v1 delta is the smaller");

    // A host holding v1 pulls v2 by its tag: the v1 delta is found and applied.
    const hostA = `${tmp.path}/a`;
    await countedPull(home, hostA, proxy, "v1");
    const viaDelta = await countedPull(home, hostA, proxy, "v2");
    assert.equal(viaDelta.out.manifest, v2Digest);
    assert.equal(viaDelta.out.config, v2.config);
    assert.equal(viaDelta.out.name, "v2");
    assert.equal(viaDelta.out.discovery.way, "delta");
    assert.equal(viaDelta.out.discovery.delta, d1.manifest);
    assert.equal(viaDelta.out.discovery.via, "tag");
    assert.equal(viaDelta.out.delta.manifest, d1.manifest);
    assert.equal(viaDelta.out.bytesFetched, d1.stats.layerBytes, "bytes fetched: the delta's tar-diff");
    assert.equal(viaDelta.stderr, "");
    for (const [i, diffId] of v2.diffIds.entries()) {
      assert.deepEqual((await cli(home, hostA, ["layer", diffId])).stdoutBytes, v2.tars[i]);
    }
    assert.equal((await cli(home, hostA, ["fsck"])).code, 0);

    // The same pull in full, on a host holding nothing.
    const full = await countedPull(home, `${tmp.path}/b`, proxy, "v2");
    assert.equal(full.out.manifest, v2Digest);
    assert.equal(full.out.discovery.way, "full");
    assert.equal(full.counts.kinds["GET referrers"], undefined, "a host holding nothing does not look");
    console.log(`discovered-delta pull of v2: ${JSON.stringify(viaDelta.counts)}`);
    console.log(`full pull of v2:            ${JSON.stringify(full.counts)}`);
    assert.ok(viaDelta.counts.bytesOut * 20 < full.counts.bytesOut, "the delta pull downloads a small fraction");
    // Referrers API (404 on 2.8: the first lookup at this registry), the fallback tag, the delta manifest, its blobs.
    assert.equal(viaDelta.counts.kinds["GET referrers"], 1);
    assert.equal(viaDelta.counts.kinds["GET manifest"], 3, "v2, the fallback tag, the delta");

    // By digest too, and the text output says which way it went and what it saved.
    const hostG = `${tmp.path}/g`;
    await countedPull(home, hostG, proxy, "v1");
    const text = await cli(home, hostG, ["pull", `docker://${proxy.host}/app@${v2Digest}`]);
    assert.equal(text.code, 0, text.stderr);
    assert.match(
      text.stdout,
      new RegExp(
        `^Pulled @${v2Digest} from delta ${
          d1.manifest.slice(0, 19)
        }, found by the referrers tag \\(2 layers: 1 rebuilt, 1 already present\\)\n` +
          `fetched \\d+ B of delta instead of 40\\d kB for the full image \\(\\d\\d% saved\\)\n`,
      ),
    );

    // A host holding v0 picks the v0 delta; one holding both, the smaller.
    const hostC = `${tmp.path}/c`;
    await countedPull(home, hostC, proxy, "v0");
    const fromV0 = await countedPull(home, hostC, proxy, "v2");
    assert.equal(fromV0.out.discovery.delta, d0.manifest);
    assert.equal(fromV0.out.manifest, v2Digest);
    const hostD = `${tmp.path}/d`;
    await countedPull(home, hostD, proxy, "v0");
    await countedPull(home, hostD, proxy, "v1");
    assert.equal((await countedPull(home, hostD, proxy, "v2")).out.discovery.delta, d1.manifest);

    // A host holding neither: the full image, and one line saying why.
    const hostE = `${tmp.path}/e`;
    await writeImage(`${tmp.path}/other`, { tag: "x", layers: [{ tar: sampleTar("other") }] });
    assert.equal((await cli(home, hostE, ["pull", `oci:${tmp.path}/other:x`])).code, 0);
    const neither = await countedPull(home, hostE, proxy, "v2");
    assert.equal(neither.out.discovery.way, "full");
    assert.equal(neither.out.discovery.listed, 2);
    assert.equal(neither.out.discovery.fitting, 0);
    assert.equal(
      neither.stderr,
      `no delta used: none of the 2 deltas to ${v2Digest} starts from an image held here; pulling the full image\n`,
    );
    // ... and --delta require fails instead, leaving the repository as it was.
    const hostE2 = `${tmp.path}/e2`;
    assert.equal((await cli(home, hostE2, ["pull", `oci:${tmp.path}/other:x`])).code, 0);
    await expectCleanFailure(
      hostE2,
      ["pull", "--delta", "require", `docker://${proxy.host}/app:v2`],
      /app:v2 \(sha256:\w+\): none of the 2 deltas to sha256:\w+ starts from an image held here$/m,
      { HOME: home },
    );

    // No delta published for an image: the registry is remembered to lack the referrers API (since the first
    // lookup), so the one extra small request is the fallback tag's 404; no line.
    const facts = `${home}/.cache/deltaship/registries/${encodeURIComponent(proxy.host)}.json`;
    assert.ok(JSON.parse(await Deno.readTextFile(facts)).noReferrersApiSince <= Date.now());
    const none = await countedPull(home, hostA, proxy, "v0");
    assert.equal(none.out.discovery.way, "full");
    assert.equal(none.out.discovery.listed, 0);
    assert.equal(none.stderr, "");
    assert.equal(none.counts.kinds["GET referrers"], undefined);
    assert.equal(none.counts.kinds["GET manifest"], 2, "v0 and the fallback tag");
    const fullV0 = await countedPull(home, `${tmp.path}/h`, proxy, "v0");
    const documents = (c: typeof none.counts) => c.requests - (c.kinds["GET blob"] ?? 0);
    assert.equal(
      documents(none.counts),
      documents(fullV0.counts) + 1,
      "one request more than a pull that does not look",
    );
    // A day later the API is asked again (a registry may gain it).
    await Deno.writeTextFile(facts, JSON.stringify({ noReferrersApiSince: Date.now() - 25 * 3600_000 }));
    const again = await countedPull(home, `${tmp.path}/h`, proxy, "v1"); // h holds v0; v1 has no delta
    assert.equal(again.out.discovery.way, "full");
    assert.equal(again.counts.kinds["GET referrers"], 1);
    assert.ok(Date.now() - JSON.parse(await Deno.readTextFile(facts)).noReferrersApiSince < 3600_000, "re-learned");
    // --delta never does not look.
    const hostF = `${tmp.path}/f`;
    await countedPull(home, hostF, proxy, "v1");
    const never = await countedPull(home, hostF, proxy, "v2", "--delta", "never");
    assert.equal(never.out.discovery, undefined);
    assert.equal(never.out.delta, undefined);
    assert.equal(never.counts.kinds["GET referrers"], undefined);
    assert.equal(never.out.manifest, v2Digest);
  },
});

Deno.test({
  name:
    "registry round trip: a broken delta falls back to the full pull (--delta require: an error); apply-delta finds deltas too",
  ignore: !haveTools("delta discovery fallback", ...TOOLS),
  async fn() {
    await using tmp = await tempDir();
    await using reg = await startRegistry();
    const home = tmp.path;
    const [, , v2] = await publishImages(tmp.path, reg);
    const v2Digest = sha256(await rawManifest(`${reg.host}/app:v2`));
    const d1 = await publishDelta(home, `${tmp.path}/ci`, reg.host, "v1", "v2");
    const delta = JSON.parse(new TextDecoder().decode(await rawManifest(`${reg.host}/app:v1-to-v2`)));
    const tarDiff = delta.layers.find((l: { mediaType: string }) => l.mediaType === "application/vnd.tar-diff").digest;
    // A proxy that flips a byte of the tar-diff on its way to the host.
    await using broken = startProxy(reg.url, async (req, { path, forward, signal }) => {
      const res = await forward();
      if (!isBlobGet(req, path) || !path.endsWith(tarDiff)) return res;
      return editBody(res, (chunk, offset) => {
        if (offset > 100 || offset + chunk.length <= 100) return chunk;
        const copy = chunk.slice();
        copy[100 - offset] ^= 0xff;
        return copy;
      }, signal);
    });
    const host = `${tmp.path}/host`;
    await countedPull(home, host, broken, "v1");
    await expectCleanFailure(
      host,
      ["pull", "--delta", "require", `docker://${broken.host}/app:v2`],
      new RegExp(`^deltaship: delta ${d1.manifest} to ${v2Digest}: layer sha256:\\w+ \\(tar-diff ${tarDiff}\\): `),
      { HOME: home },
    );
    const fell = await countedPull(home, host, broken, "v2");
    assert.equal(fell.out.manifest, v2Digest);
    assert.equal(fell.out.discovery.way, "full");
    assert.match(
      fell.out.discovery.reason,
      new RegExp(`^delta ${d1.manifest} could not be applied: layer sha256:\\w+ \\(tar-diff ${tarDiff}\\): `),
    );
    assert.match(fell.stderr, /^no delta used: delta sha256:\w+ could not be applied: .*; pulling the full image\n$/);
    for (const [i, diffId] of v2.diffIds.entries()) {
      assert.deepEqual((await cli(home, host, ["layer", diffId])).stdoutBytes, v2.tars[i]);
    }
    assert.equal((await cli(home, host, ["fsck"])).code, 0);

    // apply-delta given the image's registry reference finds the delta among its referrers.
    const other = `${tmp.path}/other`;
    assert.equal((await cli(home, other, ["pull", `docker://${reg.host}/app:v1`])).code, 0);
    const applied = await cli(home, other, [
      "--json",
      "apply-delta",
      `docker://${reg.host}/app:v2`,
      `oci:${tmp.path}/out:v2`,
    ]);
    assert.equal(applied.code, 0, applied.stderr);
    const a = JSON.parse(applied.stdout);
    assert.equal(a.targetManifest, v2Digest);
    assert.equal(a.config, v2.config);
    assert.equal(a.delta.manifest, d1.manifest);
  },
});

Deno.test({
  name: "registry round trip through the referrers API (a server implementing that endpoint in front of the registry)",
  ignore: !haveTools("delta discovery referrers API", ...TOOLS),
  async fn() {
    await using tmp = await tempDir();
    await using reg = await startRegistry();
    // distribution 2.8 has no referrers API: this front answers GET /v2/NAME/referrers/DIGEST (and OCI-Subject).
    await using front = startReferrersServer(reg.url);
    const home = tmp.path;
    const [, , v2] = await publishImages(tmp.path, reg);
    const v2Digest = sha256(await rawManifest(`${reg.host}/app:v2`));
    // Remembered (wrongly, say from before an upgrade) to lack the API: the OCI-Subject answer to the push drops that.
    const facts = `${home}/.cache/deltaship/registries/${encodeURIComponent(front.host)}.json`;
    await Deno.mkdir(`${home}/.cache/deltaship/registries`, { recursive: true });
    await Deno.writeTextFile(facts, JSON.stringify({ noReferrersApiSince: Date.now() }));
    const d1 = await publishDelta(home, `${tmp.path}/ci`, front.host, "v1", "v2");
    assert.equal(d1.published.referrer, "referrers-api");
    await assert.rejects(Deno.stat(facts), Deno.errors.NotFound);
    assert.equal(front.referrers.get(`app ${v2Digest}`)?.[0].digest, d1.manifest);
    // The registry answered OCI-Subject: no fallback tag was written.
    const tags = await fetch(`${reg.url}/v2/app/tags/list`).then((r) => r.json());
    assert.deepEqual(tags.tags.sort(), ["v0", "v1", "v1-to-v2", "v2"]);

    const host = `${tmp.path}/host`;
    await countedPull(home, host, front, "v1");
    const pulled = await countedPull(home, host, front, "v2");
    assert.equal(pulled.out.manifest, v2Digest);
    assert.equal(pulled.out.config, v2.config);
    assert.equal(pulled.out.discovery.way, "delta");
    assert.equal(pulled.out.discovery.via, "api");
    assert.equal(pulled.out.discovery.delta, d1.manifest);
    console.log(`discovered-delta pull of v2 by the referrers API: ${JSON.stringify(pulled.counts)}`);
    assert.equal(pulled.counts.kinds["GET referrers"], 1);
    assert.equal(pulled.counts.kinds["GET manifest"], 2, "v2 and the delta: no fallback tag");
    // No delta to v0: the one extra small request is the referrers listing.
    const none = await countedPull(home, host, front, "v0");
    assert.equal(none.out.discovery.listed, 0);
    assert.equal(none.counts.requests, countRequests(front.requests).requests);
    assert.equal(none.counts.kinds["GET referrers"], 1);
    assert.equal(none.counts.kinds["GET manifest"], 1);
  },
});

/** A delta manifest's JSON, changed by `edit`, as bytes. */
function edited(bytes: Uint8Array, edit: (doc: DeltaDoc) => void): Uint8Array {
  const doc = JSON.parse(new TextDecoder().decode(bytes));
  edit(doc);
  return new TextEncoder().encode(JSON.stringify(doc));
}

interface DeltaDoc {
  annotations: Record<string, string>;
  layers: { mediaType: string; size: number; digest: string }[];
}

const tarDiffOf = (doc: DeltaDoc) => doc.layers.find((l) => l.mediaType === "application/vnd.tar-diff")!;

Deno.test({
  name: "registry round trip: lying deltas are found out before choosing, or after failing, and the honest one is used",
  ignore: !haveTools("delta discovery candidates", ...TOOLS),
  async fn() {
    await using tmp = await tempDir();
    await using reg = await startRegistry();
    const home = tmp.path;
    const [v0, v1, v2] = await publishImages(tmp.path, reg);
    const ci = `${tmp.path}/ci`;
    const honest = await publishDelta(home, ci, reg.host, "v1", "v2");
    const toV0 = await publishDelta(home, ci, reg.host, "v1", "v0"); // from what the host holds, to another image
    const honestBytes = await rawManifest(`${reg.host}/app:v1-to-v2`);
    const tarDiff = tarDiffOf(JSON.parse(new TextDecoder().decode(honestBytes)));
    const otherSource = (d: DeltaDoc) => (d.annotations[DeltaAnnotation.sourceConfig] = v0.config);
    // The sample: a 1-byte tar-diff from a config the host does not hold; and one cheaper by a byte.
    const tiny = edited(honestBytes, (d) => (otherSource(d), tarDiffOf(d).size = 1));
    const fromV0 = edited(honestBytes, (d) => (otherSource(d), tarDiffOf(d).size = tarDiff.size - 1));
    // From v1 indeed, but its tar-diff is a byte shorter than it says: it fails when applied.
    const short = edited(honestBytes, (d) => void (tarDiffOf(d).size = tarDiff.size - 1));
    const documents = new Map([tiny, fromV0, short].map((b) => [sha256(b), b]));
    const entry = (bytes: Uint8Array) => deltaEntry(bytes, v1.config); // every entry claims v1's config
    const otherBytes = await rawManifest(`${reg.host}/app:v1-to-v0`);

    const pullV2 = async (listed: Uint8Array[], ...extra: string[]) => {
      await using front = startHostileFront(reg.url, {
        listing: () => ({ body: indexBytes(listed.map(entry)) }),
        documents,
      });
      const host = `${tmp.path}/host-${crypto.randomUUID()}`;
      assert.equal((await cli(home, host, ["pull", `docker://${reg.host}/app:v1`])).code, 0);
      const r = await cli(home, host, ["--json", "pull", ...extra, `docker://${front.host}/app:v2`]);
      assert.equal(r.code, 0, r.stderr);
      const out = JSON.parse(r.stdout);
      assert.equal(out.manifest, v2.manifest);
      return { out, stderr: r.stderr, blobs: front.requests.filter((q) => isBlobGetPath(q.method, q.path)) };
    };

    // Deltas whose own manifest starts from a config not held are skipped, whatever the listing said.
    for (const mode of ["auto", "require"]) {
      const { out, stderr } = await pullV2([tiny, fromV0, honestBytes], "--delta", mode);
      assert.equal(out.discovery.way, "delta", mode);
      assert.equal(out.discovery.delta, honest.manifest);
      assert.equal(out.discovery.fitting, 3);
      assert.equal(stderr, "");
    }
    // A delta that fails when applied: the next one within the budget is tried.
    for (const mode of ["auto", "require"]) {
      const { out, stderr } = await pullV2([short, honestBytes], "--delta", mode);
      assert.equal(out.discovery.way, "delta", mode);
      assert.equal(out.discovery.delta, honest.manifest);
      assert.match(
        stderr,
        new RegExp(
          `^delta ${sha256(short)} could not be applied: .*${tarDiff.digest}.*; trying delta ${honest.manifest}\n$`,
        ),
      );
    }
    // A delta that builds another image is never applied: not a byte of it is fetched.
    const { out, stderr, blobs } = await pullV2([otherBytes]);
    assert.equal(out.discovery.way, "full");
    assert.equal(
      out.discovery.reason,
      `delta ${toV0.manifest} is not usable: delta ${toV0.manifest} builds ${v0.manifest} (${v0.manifestSize} bytes), ` +
        `not ${v2.manifest} (${v2.manifestSize} bytes)`,
    );
    assert.match(stderr, /^no delta used: delta sha256:\w+ is not usable: .*; pulling the full image\n$/);
    const toV0Blobs = JSON.parse(new TextDecoder().decode(otherBytes)).layers.map((l: { digest: string }) => l.digest);
    assert.deepEqual(blobs.filter((q) => toV0Blobs.some((d: string) => q.path.endsWith(d))), []);
  },
});

Deno.test({
  name: "registry round trip: looking for deltas has one deadline, then the full image (requests counted)",
  ignore: !haveTools("delta discovery deadline", ...TOOLS),
  async fn() {
    await using tmp = await tempDir();
    const s = await twoVersions(tmp.path);
    try {
      // Eight pages of one fitting delta each, and each delta's manifest, every one answered just within its deadline.
      const documents = new Map<string, Uint8Array>();
      const pages = Array.from({ length: 8 }, (_, i) => {
        const m = deltaManifestTo(s.v2, s.v1.config, { size: 100 + i, salt: String(i) });
        documents.set(sha256(m), m);
        return indexBytes([deltaEntry(m, s.v1.config)]);
      });
      await using front = startHostileFront(s.reg.url, {
        listing: (n) => ({
          body: pages[n % 8],
          link: `</v2/app/referrers/${s.v2.manifest}?page=${n + 1}>; rel="next"`,
        }),
        documents,
        delayMs: 1200,
      });
      const env = { HOME: tmp.path, DELTASHIP_HTTP_DEADLINE_MS: "1500", DELTASHIP_RETRY_BASE_MS: "5" };
      const reason = "looking for deltas took longer than 3 s (twice DELTASHIP_HTTP_DEADLINE_MS)";
      await run("cp", "-a", s.repo, `${tmp.path}/second`);
      const started = performance.now();
      const r = await runCli(["--repo", s.repo, "--json", "pull", `docker://${front.host}/app:v2`], env);
      const ms = performance.now() - started;
      assert.equal(r.code, 0, r.stderr);
      const out = JSON.parse(r.stdout);
      assert.equal(out.manifest, s.v2.manifest);
      assert.equal(out.discovery.way, "full");
      assert.equal(out.discovery.reason, reason);
      assert.equal(r.stderr, `no delta used: ${reason}; pulling the full image\n`);
      assert.ok(ms >= 3000, `took ${ms} ms: discovery has its deadline, not less`);
      // Each answer takes 1.2 s: in 3 s at most three were asked for, where there are 16 to drip.
      assert.ok(
        front.listings() + front.documentsServed() <= 3,
        `${front.listings()} pages, ${front.documentsServed()}`,
      );

      await expectCleanFailure(
        `${tmp.path}/second`,
        ["pull", "--delta", "require", `docker://${front.host}/app:v2`],
        new RegExp(`app:v2 \\(${s.v2.manifest}\\): ${reason.replace(/[()]/g, "\\$&")}\n$`),
        env,
      );
    } finally {
      await s.reg.stop();
    }
  },
});
